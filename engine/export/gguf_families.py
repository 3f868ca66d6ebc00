"""Each family's place in llama.cpp: its architecture name, how its tensors are stored, what metadata it reads.

What differs between the families (from llama.cpp's model loaders, src/models/*.cpp, and its converter):
- Llama and Mistral (llama.cpp's "llama"): rotary embedding on interleaved pairs, so the query and
  key rows are reordered (engine.export.gguf_tensors.reorder_for_rotary); Llama 3.1+ frequency
  scaling travels as a `rope_freqs` tensor of per-frequency divisors.
- Qwen2 (query/key/value biases) and Qwen3 (per-head query/key norms, its own head size): rotary on
  halves as in Hugging Face, no reordering.
- Gemma 2 and 3: every norm weight is stored as 1 + w (Gemma's RMSNorm multiplies by 1 + w, llama.cpp
  by w); head size, sliding window with its per-layer pattern, soft-caps, Gemma 3's local rope base.
  llama.cpp scales queries by 1/sqrt(head size), so query_pre_attn_scalar must equal it.
- Phi-3: fused qkv and gate_up projections (llama.cpp splits them itself), the original context length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from engine.export.errors import ExportError


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_settings(config, layer_kind: str = "full_attention") -> dict:
    """The rope parameters of one kind of layer (transformers 5 keeps them per layer kind for Gemma 3)."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    if layer_kind in params or "full_attention" in params:
        params = dict(params.get(layer_kind) or params.get("full_attention") or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def _sliding_pattern(config) -> Optional[list[bool]]:
    """Per layer, whether it uses the sliding window (None: every layer sees everything)."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not window or not layer_types:
        return None
    return [kind == "sliding_attention" for kind in layer_types]


def _common(writer, config) -> None:
    """The keys every family needs: sizes, heads, norm epsilon, rope base, vocabulary size."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(rope_settings(config)["rope_theta"]))
    writer.add_vocab_size(config.vocab_size)
    dim = head_dim(config)
    if dim * heads != config.hidden_size:  # heads narrower or wider than hidden/heads must be stated
        writer.add_key_length(dim)
        writer.add_value_length(dim)


def _llama_keys(writer, config) -> None:
    import gguf

    writer.add_rope_dimension_count(head_dim(config))
    rope = rope_settings(config)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def _gemma_keys(writer, config) -> None:
    dim = head_dim(config)
    writer.add_key_length(dim)
    writer.add_value_length(dim)
    if getattr(config, "attn_logit_softcapping", None):
        writer.add_attn_logit_softcapping(float(config.attn_logit_softcapping))
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(float(config.final_logit_softcapping))
    pattern = _sliding_pattern(config)
    if pattern is not None:
        writer.add_sliding_window(int(config.sliding_window))
        writer.add_sliding_window_pattern(pattern)
        local = rope_settings(config, "sliding_attention")["rope_theta"]
        writer.add_rope_freq_base_swa(float(local))


def _phi3_keys(writer, config) -> None:
    rope = rope_settings(config)
    rotary = float(rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0) or 1.0))
    writer.add_rope_dimension_count(int(rotary * config.hidden_size) // config.num_attention_heads)
    original = getattr(config, "original_max_position_embeddings", None) or config.max_position_embeddings
    writer.add_rope_scaling_orig_ctx_len(int(original))
    writer.add_sliding_window(int(getattr(config, "sliding_window", None) or 0))


def _no_keys(writer, config) -> None:
    return None


def _head_size_keys(writer, config) -> None:
    """Qwen3 states its head size (llama.cpp would otherwise take hidden / heads)."""
    if head_dim(config) * config.num_attention_heads == config.hidden_size:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))


def _rope_problem(config, allowed: tuple[str, ...]) -> Optional[str]:
    kind = rope_settings(config)["rope_type"]
    if kind not in allowed:
        return f"rope scaling '{kind}'"
    return None


def _llama_problem(config) -> Optional[str]:
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "bias terms in its attention or feed-forward layers"
    return _rope_problem(config, ("default", "linear", "llama3"))


def _gemma_problem(config) -> Optional[str]:
    scalar = getattr(config, "query_pre_attn_scalar", None)
    # llama.cpp scales queries by 1/sqrt(head size), except Gemma 2 27B (46 layers) and Gemma 3 27B (62
    # layers), where it uses hidden size / heads: any other query_pre_attn_scalar would be ignored.
    expected = head_dim(config)
    if config.num_hidden_layers in (46, 62):
        expected = config.hidden_size // config.num_attention_heads
    if scalar is not None and int(scalar) != expected:
        return f"query_pre_attn_scalar {scalar} (llama.cpp assumes {expected})"
    return _rope_problem(config, ("default", "linear"))


def _plain_rope_problem(config) -> Optional[str]:
    return _rope_problem(config, ("default",))


def _window_notice(config) -> Optional[str]:
    """llama.cpp runs these families without their sliding window: a plain word about longer texts."""
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", None) is False or not window:
        return None
    if window >= config.max_position_embeddings:
        return None
    return (f"This model limits attention to the last {window} tokens; llama.cpp lets it see the whole "
            f"context, so answers to conversations longer than {window} tokens may differ from Tunesmith's.")


@dataclass(frozen=True)
class GGUFFamily:
    """How one Hugging Face architecture is written for llama.cpp."""

    arch: str  # llama.cpp's architecture name (general.architecture, the prefix of its keys)
    reorder_qk: bool  # rotary on interleaved pairs: query/key rows reordered
    norm_shift: float  # added to every norm weight
    keys: Callable  # family-specific metadata: keys(writer, config)
    problem: Callable[[object], Optional[str]] = _plain_rope_problem  # what llama.cpp could not run, or None
    notice: Callable[[object], Optional[str]] = lambda config: None  # what the user should know, or None
    tied_always: bool = False  # the output layer is always the embedding (no output.weight)


GGUF_FAMILIES: dict[str, GGUFFamily] = {
    "LlamaForCausalLM": GGUFFamily("llama", True, 0.0, _llama_keys, _llama_problem),
    "MistralForCausalLM": GGUFFamily("llama", True, 0.0, _llama_keys, _llama_problem, _window_notice),
    "Qwen2ForCausalLM": GGUFFamily("qwen2", False, 0.0, _no_keys, _plain_rope_problem, _window_notice),
    "Qwen3ForCausalLM": GGUFFamily("qwen3", False, 0.0, _head_size_keys),
    "Gemma2ForCausalLM": GGUFFamily("gemma2", False, 1.0, _gemma_keys, _gemma_problem, tied_always=True),
    "Gemma3ForCausalLM": GGUFFamily("gemma3", False, 1.0, _gemma_keys, _gemma_problem, tied_always=True),
    "Phi3ForCausalLM": GGUFFamily("phi3", False, 0.0, _phi3_keys, _plain_rope_problem, _window_notice),
}
# The families' names for messages, in the order users know them.
FAMILY_NAMES = {"LlamaForCausalLM": "Llama (and SmolLM)", "MistralForCausalLM": "Mistral",
                "Qwen2ForCausalLM": "Qwen2/2.5", "Qwen3ForCausalLM": "Qwen3", "Gemma2ForCausalLM": "Gemma 2",
                "Gemma3ForCausalLM": "Gemma 3 (text)", "Phi3ForCausalLM": "Phi-3/Phi-4"}


def architecture_of(config) -> str:
    architectures = list(getattr(config, "architectures", None) or [])
    return architectures[0] if architectures else type(config).__name__


def family_for(config) -> GGUFFamily:
    """The GGUF layout of this model, or ExportError saying what is supported and what to do instead."""
    name = architecture_of(config)
    family = GGUF_FAMILIES.get(name)
    if family is None:
        supported = ", ".join(f"{FAMILY_NAMES[n]} ({n})" for n in GGUF_FAMILIES)
        raise ExportError(f"GGUF export supports {supported}; this model is {name}. Export as 'merged' instead "
                          "and convert that folder with llama.cpp's convert_hf_to_gguf.py.")
    problem = family.problem(config)
    if problem:
        raise ExportError(f"GGUF export does not handle {FAMILY_NAMES[name]} models with {problem} yet; "
                          "export as 'merged' and convert it with llama.cpp's convert_hf_to_gguf.py.")
    return family


def add_hyperparameters(writer, config, family: GGUFFamily) -> None:
    """Write the <arch>.* keys llama.cpp needs to rebuild the model."""
    _common(writer, config)
    family.keys(writer, config)


def extra_tensors(config, family: GGUFFamily) -> dict:
    """Tensors llama.cpp needs that the model does not hold: name -> float32 numpy array."""
    if family.arch == "llama" and rope_settings(config)["rope_type"] == "llama3":
        return {"rope_freqs.weight": llama3_rope_divisors(config)}
    return {}


def llama3_rope_divisors(config):
    """Per rotary frequency, by how much Llama 3's frequency scaling divides it (llama.cpp's rope_freqs).

    Computed with transformers' own rope initialisation, so the file holds exactly what the model uses.
    """
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    rope = rope_settings(config)
    dim = head_dim(config)
    plain = 1.0 / (float(rope["rope_theta"]) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    return (plain / scaled.float()).numpy()
