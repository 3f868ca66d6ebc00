"""Model families: which ones are verified end to end, and which of our speed levers each one can take.

Two levers replace part of a model's own forward pass during training:
- the per-example attention kernel (engine.train.attention) replaces the attention function;
- the labelled-positions-only loss (engine.train.loss) replaces everything after the decoder body.
Each replacement is correct only if the model does nothing the lever leaves out, so each is used only
for families on an ALLOW-LIST (proved equal to the model's own forward by tests/test_families_*.py)
and only when the configuration has none of the features the lever does not implement: a sliding
attention window shorter than the examples, soft-capped attention scores or logits. A family that is
not listed simply keeps the model's own attention and loss (slower, always right); a run also checks
one batch both ways before training (engine.train.lever_check).

Nothing here imports torch: the window uses it to describe models too.
"""
from __future__ import annotations

from typing import Optional

# model_type -> the name people know the family by. These are the families the compatibility matrix
# (tests/test_families_*.py) trains, chats with and exports; others may work but are not verified.
VERIFIED_FAMILIES = {
    "llama": "Llama",
    "qwen2": "Qwen2",
    "qwen3": "Qwen3",
    "gemma2": "Gemma 2",
    "gemma3_text": "Gemma 3",
    "mistral": "Mistral",
    "phi3": "Phi-3",
    "gpt_neox": "GPT-NeoX",
}
# Names for families people may bring that are not (yet) verified, so the window can still name them.
OTHER_FAMILY_NAMES = {
    "gemma": "Gemma", "gemma3": "Gemma 3 (multimodal)", "qwen2_moe": "Qwen2-MoE", "qwen3_moe": "Qwen3-MoE",
    "phi": "Phi", "phi4_multimodal": "Phi-4 multimodal", "gpt2": "GPT-2", "granite": "Granite",
    "olmo": "OLMo", "olmo2": "OLMo 2", "smollm3": "SmolLM3", "starcoder2": "StarCoder2", "falcon": "Falcon",
    "mixtral": "Mixtral", "cohere": "Cohere", "stablelm": "StableLM", "deepseek_v3": "DeepSeek-V3",
}

# The attention kernel is exact (tests) for these families when no feature below is in use.
KERNEL_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text", "gpt_neox"})
# The labelled-positions-only loss is exact for these families when their logits are not soft-capped.
FAST_LOSS_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text", "gpt_neox"})


def model_type(model_config) -> str:
    return str(getattr(model_config, "model_type", "") or "unknown")


def family_name(model_config) -> str:
    """'Qwen2', 'Gemma 2', ... or the raw model_type for families Tunesmith has no name for."""
    kind = model_type(model_config)
    return VERIFIED_FAMILIES.get(kind) or OTHER_FAMILY_NAMES.get(kind) or kind


def is_verified(model_config) -> bool:
    return model_type(model_config) in VERIFIED_FAMILIES


def active_sliding_window(model_config) -> Optional[int]:
    """The sliding attention window some layers use, or None where every layer sees the whole sequence."""
    window = getattr(model_config, "sliding_window", None)
    if not window or getattr(model_config, "use_sliding_window", None) is False:
        return None
    layer_types = getattr(model_config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return int(window)


def kernel_problem(model_config, max_length: int) -> Optional[str]:
    """Why the per-example attention kernel would compute this model's attention wrongly, or None."""
    if getattr(model_config, "attn_logit_softcapping", None):
        return "the model soft-caps its attention scores, which the faster attention does not do"
    window = active_sliding_window(model_config)
    if window is not None and window < max_length:
        return (f"the model attends to a sliding window of {window} tokens and examples can be longer "
                f"({max_length}), which the faster attention does not limit")
    if model_type(model_config) not in KERNEL_FAMILIES:
        return f"the faster attention is not verified for {family_name(model_config)} models"
    return None


def loss_problem(model_config) -> Optional[str]:
    """Why the labelled-positions-only loss would differ from the model's own loss, or None."""
    if getattr(model_config, "final_logit_softcapping", None):
        return "the model soft-caps its output logits, which only its own forward pass does"
    if model_type(model_config) not in FAST_LOSS_FAMILIES:
        return f"the lighter loss computation is not verified for {family_name(model_config)} models"
    return None
