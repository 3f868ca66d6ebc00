"""Training: methods, the loop, checkpoints, run folders, memory estimates.

Imported lazily so that `import engine.train` stays cheap for callers that only need one function.
"""
from __future__ import annotations

__all__ = ["run_training", "count_trainable", "estimate_memory"]


def __getattr__(name: str):
    if name == "run_training":
        from engine.train.run import run_training

        return run_training
    if name == "count_trainable":
        from engine.train.methods import count_trainable

        return count_trainable
    if name == "estimate_memory":
        from engine.train.memory import estimate_memory

        return estimate_memory
    raise AttributeError(name)
