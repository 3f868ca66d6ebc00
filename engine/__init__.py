"""Tunesmith's engine: data, models, training, evaluation and export, without Qt.

Importing it puts the installed GPU support (engine.gpu_runtime, the CUDA build of PyTorch in the data
folder) first on sys.path, before anything imports torch: every worker process imports `engine` first,
so training, chat and evaluation use the graphics card once GPU support is installed.
"""
from engine import gpu_runtime as _gpu_runtime

_gpu_runtime.activate()
