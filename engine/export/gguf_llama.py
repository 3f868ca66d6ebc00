"""Llama-family weights in llama.cpp's layout: tensor names, Q/K order, number formats, hyper-parameters.

llama.cpp applies rotary embeddings to interleaved pairs of each head's dimensions, where
Hugging Face's Llama rotates the two halves of each head. The same model therefore needs the rows
of the query and key projections reordered (per head: row i of the first half, then row i of the
second half). Readers of GGUF files, transformers included, undo exactly this.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.export.errors import ExportError

# Hugging Face architecture -> llama.cpp architecture. Mistral-style configs share the llama
# layout but usually ship sentencepiece tokenizers, which the GGUF vocabulary writer refuses.
SUPPORTED_GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama"}

# GGML number formats, by the names of gguf.GGMLQuantizationType.
GGUF_FORMATS = {"gguf-f16": "F16", "gguf-q8_0": "Q8_0"}
_Q8_0_BLOCK = 32  # Q8_0 packs rows in blocks of 32 values: a row length must be a multiple of it


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the file: its GGUF name, the model parameter it comes from, and how it is stored."""

    gguf_name: str
    hf_name: str
    shape: tuple[int, ...]
    qtype: str  # F32 | F16 | Q8_0


def check_supported(config) -> str:
    """The llama.cpp architecture name for this model config, or ExportError saying what is supported."""
    architectures = list(getattr(config, "architectures", None) or [])
    name = architectures[0] if architectures else type(config).__name__
    if name not in SUPPORTED_GGUF_ARCHITECTURES:
        supported = ", ".join(SUPPORTED_GGUF_ARCHITECTURES)
        raise ExportError(f"GGUF export supports {supported} (Llama-family models such as the starter model "
                          f"SmolLM2); this model is {name}. Export as 'merged' instead and convert that "
                          "folder with llama.cpp's convert_hf_to_gguf.py.")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ExportError("GGUF export does not handle Llama models with bias terms yet; export as 'merged'.")
    rope = _rope(config)
    if rope.get("rope_type", "default") not in ("default", "linear"):
        raise ExportError(f"GGUF export does not handle rope scaling '{rope['rope_type']}' yet; "
                          "export as 'merged'.")
    return SUPPORTED_GGUF_ARCHITECTURES[name]


def _rope(config) -> dict:
    # transformers 5 keeps rope settings in rope_parameters; older configs in rope_theta/rope_scaling.
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_hyperparameters(writer, config) -> None:
    """Write the llama.* keys llama.cpp needs to rebuild the model."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    dim = head_dim(config)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(dim)
    if dim * heads != config.hidden_size:  # heads narrower or wider than hidden/heads must be stated
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope = _rope(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_vocab_size(config.vocab_size)


def plan_tensors(state_dict: dict, config, target: str) -> list[PlannedTensor]:
    """Which tensors go into the file, under which names and in which format."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    planned = []
    for hf_name, tensor in state_dict.items():
        if hf_name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False):
            continue  # tied: llama.cpp reuses token_embd, and a reader infers the tie from its absence
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"GGUF export: the model has a tensor '{hf_name}' llama.cpp has no place for; "
                              "export as 'merged' instead.")
        shape = tuple(tensor.shape)
        planned.append(PlannedTensor(gguf_name, hf_name, shape, _storage_format(shape, target)))
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


def tensor_bytes(planned: PlannedTensor, weight, config):
    """The stored form of one tensor: reordered if it is Q or K, then converted to its format."""
    import gguf
    import numpy as np

    data = weight.astype(np.float32, copy=False)
    if planned.gguf_name.startswith("blk.") and ".attn_q." in planned.gguf_name:
        data = reorder_for_rotary(data, config.num_attention_heads)
    elif planned.gguf_name.startswith("blk.") and ".attn_k." in planned.gguf_name:
        data = reorder_for_rotary(data, config.num_key_value_heads or config.num_attention_heads)
    return gguf.quants.quantize(np.ascontiguousarray(data), gguf.GGMLQuantizationType[planned.qtype])


def stored_nbytes(planned: PlannedTensor) -> int:
    """Bytes one planned tensor takes in the file (for the header and the disk-space estimate)."""
    count = math.prod(planned.shape)
    if planned.qtype == "F32":
        return 4 * count
    if planned.qtype == "F16":
        return 2 * count
    return count // _Q8_0_BLOCK * 34  # each block: 32 int8 values and one f16 scale
