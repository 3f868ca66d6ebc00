"""The tensors of a GGUF file: llama.cpp's names, the number formats, and the per-family transforms.

Names come from gguf-py's table for the family's llama.cpp architecture (the table llama.cpp's own
converter uses). Two families store some tensors differently from Hugging Face:
- llama.cpp's Llama applies rotary embeddings to interleaved pairs of each head's dimensions, where
  Hugging Face's Llama rotates the two halves of each head: the rows of the query and key
  projections are reordered (per head: row i of the first half, then row i of the second half).
  Readers of GGUF files, transformers included, undo exactly this.
- Gemma's norms multiply by 1 + w, llama.cpp's by w: the stored weight is 1 + w.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.export.errors import ExportError
from engine.export.gguf_families import GGUFFamily

# GGML number formats, by the names of gguf.GGMLQuantizationType.
GGUF_FORMATS = {"gguf-f16": "F16", "gguf-q8_0": "Q8_0"}
_Q8_0_BLOCK = 32  # Q8_0 packs rows in blocks of 32 values: a row length must be a multiple of it


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the file: its GGUF name, where its values come from, and how it is stored."""

    gguf_name: str
    hf_name: str  # the model parameter, or "" for a tensor computed for llama.cpp (e.g. rope_freqs)
    shape: tuple[int, ...]
    qtype: str  # F32 | F16 | Q8_0


def plan_tensors(state_dict: dict, config, family: GGUFFamily, target: str, extra: dict) -> list[PlannedTensor]:
    """Which tensors go into the file, under which names and in which format.

    `extra`: tensors computed for llama.cpp (gguf name -> array), see gguf_families.extra_tensors.
    """
    import gguf

    arch = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == family.arch)
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = family.tied_always or getattr(config, "tie_word_embeddings", False)
    planned = []
    for hf_name, tensor in state_dict.items():
        if hf_name == "lm_head.weight" and tied:
            continue  # tied: llama.cpp reuses token_embd, and a reader infers the tie from its absence
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"GGUF export: the model has a tensor '{hf_name}' llama.cpp has no place for; "
                              "export as 'merged' instead.")
        shape = tuple(tensor.shape)
        planned.append(PlannedTensor(gguf_name, hf_name, shape, _storage_format(shape, target)))
    for gguf_name, values in extra.items():
        planned.append(PlannedTensor(gguf_name, "", tuple(values.shape), "F32"))
    return planned


def _storage_format(shape: tuple[int, ...], target: str) -> str:
    if len(shape) == 1:
        return "F32"  # norms are tiny and sensitive; llama.cpp keeps 1-D tensors in full precision
    wanted = GGUF_FORMATS[target]
    if wanted == "Q8_0" and shape[-1] % _Q8_0_BLOCK:
        return "F16"
    return wanted


def reorder_for_rotary(weight, heads: int):
    """Rows of a Q or K projection, from Hugging Face's half-split rotary order to llama.cpp's pairs."""
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_bytes(planned: PlannedTensor, weight, config, family: GGUFFamily):
    """The stored form of one tensor: transformed as its family needs, then converted to its format."""
    import gguf
    import numpy as np

    data = weight.astype(np.float32, copy=False)
    name = planned.gguf_name
    if family.reorder_qk and name.startswith("blk.") and (".attn_q." in name or ".attn_k." in name):
        heads = config.num_attention_heads
        if ".attn_k." in name:
            heads = getattr(config, "num_key_value_heads", None) or heads
        data = reorder_for_rotary(data, heads)
    if family.norm_shift and planned.hf_name.endswith("norm.weight"):
        data = data + np.float32(family.norm_shift)
    return gguf.quants.quantize(np.ascontiguousarray(data), gguf.GGMLQuantizationType[planned.qtype])


def stored_nbytes(planned: PlannedTensor) -> int:
    """Bytes one planned tensor takes in the file (for the header and the disk-space estimate)."""
    count = math.prod(planned.shape)
    if planned.qtype == "F32":
        return 4 * count
    if planned.qtype == "F16":
        return 2 * count
    return count // _Q8_0_BLOCK * 34  # each block: 32 int8 values and one f16 scale
