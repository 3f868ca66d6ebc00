"""Writing one GGUF file (llama.cpp, LM Studio, Ollama) from a merged model in memory.

Tensors are converted one at a time just before they are written, so memory stays at one copy
of the model plus one tensor, and progress is reported per tensor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from engine.export.errors import Progress, report
from engine.export.gguf_llama import (GGUF_FORMATS, add_hyperparameters, check_supported, plan_tensors,
                                      stored_nbytes, tensor_bytes)
from engine.export.gguf_vocab import GGUFVocab, add_vocab

_FILE_TYPES = {"gguf-f16": "MOSTLY_F16", "gguf-q8_0": "MOSTLY_Q8_0"}  # gguf.LlamaFileType names


def estimate_gguf_bytes(model, target: str) -> int:
    """How big the file will be (tensor data; the vocabulary adds a few MB at most)."""
    planned = plan_tensors(model.state_dict(), model.config, target)
    return sum(stored_nbytes(p) for p in planned)


def write_gguf(model, vocab: GGUFVocab, path: Path, target: str, *, name: str,
               progress: Optional[Progress] = None, span: tuple[float, float] = (0.0, 1.0)) -> None:
    """Write `model` (a merged Llama-family model) and `vocab` to `path` in format `target`.

    `span` is the part of the overall progress this step fills.
    """
    import gguf

    if target not in GGUF_FORMATS:
        raise ValueError(f"unknown GGUF target {target!r}")
    config = model.config
    arch = check_supported(config)
    state = model.state_dict()
    planned = plan_tensors(state, config, target)

    writer = gguf.GGUFWriter(str(path), arch)
    try:
        writer.add_name(name)
        writer.add_file_type(gguf.LlamaFileType[_FILE_TYPES[target]])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_hyperparameters(writer, config)
        add_vocab(writer, vocab)
        for item in planned:
            # The logical shape with a float dtype: the writer then keeps the shape as given.
            writer.add_tensor_info(item.gguf_name, item.shape, np.dtype(np.float32), stored_nbytes(item),
                                   raw_dtype=gguf.GGMLQuantizationType[item.qtype])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        start, end = span
        for index, item in enumerate(planned):
            report(progress, f"Writing {item.gguf_name} ({item.qtype})",
                   start + (end - start) * index / max(1, len(planned)))
            weight = state[item.hf_name].detach().to("cpu").float().numpy()
            writer.write_tensor_data(tensor_bytes(item, weight, config))
    finally:
        writer.close()
