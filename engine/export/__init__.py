"""Export a finished run: adapter folder, merged Hugging Face model, or GGUF for llama.cpp/LM Studio/Ollama.

    from engine.export import export_run
    export_run("runs/2026-11-22_1530_bot", "gguf-q8_0", "~/models/bot.gguf", progress=print)
"""
from engine.export.errors import ExportError, Progress
from engine.export.exporter import EXPORT_TARGETS, export_run
from engine.export.gguf_families import GGUF_FAMILIES as SUPPORTED_GGUF_ARCHITECTURES
from engine.export.verify import GGUF_TOLERANCES, VerifyResult, verify_gguf

__all__ = ["export_run", "ExportError", "Progress", "EXPORT_TARGETS", "SUPPORTED_GGUF_ARCHITECTURES",
           "GGUF_TOLERANCES", "VerifyResult", "verify_gguf"]
