"""Writing one GGUF file (llama.cpp, LM Studio, Ollama) from a merged model in memory.

Tensors are converted one at a time just before they are written, so memory stays at one copy
of the model plus one tensor, and progress is reported per tensor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from engine.export.errors import Progress, report
from engine.export.gguf_families import add_hyperparameters, extra_tensors, family_for
from engine.export.gguf_tensors import GGUF_FORMATS, plan_tensors, stored_nbytes, tensor_bytes
from engine.export.gguf_vocab import GGUFVocab, add_vocab

_FILE_TYPES = {"gguf-f16": "MOSTLY_F16", "gguf-q8_0": "MOSTLY_Q8_0"}  # gguf.LlamaFileType names


def estimate_gguf_bytes(model, target: str) -> int:
    """How big the file will be (tensor data; the vocabulary adds a few MB at most)."""
    family = family_for(model.config)
    planned = plan_tensors(model.state_dict(), model.config, family, target, extra_tensors(model.config, family))
    return sum(stored_nbytes(p) for p in planned)


def name_for_llama_cpp(name: str, vocab: GGUFVocab) -> str:
    """The model name to store; llama.cpp treats a name containing "phi3"/"phi-3" as Phi-3's vocabulary.

    llama.cpp looks up Phi-3's SentencePiece markers (</s>, <unk>, <s>) when the name says phi3, and refuses
    to load a file whose vocabulary lacks them (a run named "phi3-..." on a byte-level model, say).
    """
    lowered = name.lower()
    if ("phi3" in lowered or "phi-3" in lowered) and not {"</s>", "<unk>", "<s>"} <= set(vocab.tokens):
        return lowered.replace("phi-3", "phi 3").replace("phi3", "phi 3")
    return name


def write_gguf(model, vocab: GGUFVocab, path: Path, target: str, *, name: str,
               progress: Optional[Progress] = None, span: tuple[float, float] = (0.0, 1.0)) -> None:
    """Write `model` (a merged model of a family in gguf_families) and `vocab` to `path` in format `target`.

    `span` is the part of the overall progress this step fills.
    """
    import gguf

    if target not in GGUF_FORMATS:
        raise ValueError(f"unknown GGUF target {target!r}")
    config = model.config
    family = family_for(config)
    state = model.state_dict()
    extra = extra_tensors(config, family)
    planned = plan_tensors(state, config, family, target, extra)

    writer = gguf.GGUFWriter(str(path), family.arch)
    try:
        writer.add_name(name_for_llama_cpp(name, vocab))
        writer.add_file_type(gguf.LlamaFileType[_FILE_TYPES[target]])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_hyperparameters(writer, config, family)
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
            weight = state[item.hf_name].detach().to("cpu").float().numpy() if item.hf_name else extra[item.gguf_name]
            writer.write_tensor_data(tensor_bytes(item, weight, config, family))
    finally:
        writer.close()
