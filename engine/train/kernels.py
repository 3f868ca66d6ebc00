"""Faster kernels for the same maths on a GPU: Liger Kernel's fused layers and torch.compile of the decoder layers.

Both change how the model's layers are computed, never what: the same loss and gradients up to
float rounding (tests compare them on the CPU with the compiler's eager backend). Both pay only
on a CUDA GPU and are measured there by bench/gpu_session.sh; on a CPU they are never switched on.

- Liger Kernel (an optional dependency: `pip install tunesmith[gpu]`) replaces RMSNorm, RoPE and
  SwiGLU of the families it supports with fused Triton kernels: fewer passes over the activations.
- torch.compile of each decoder layer (not the whole model: the layers are alike, so one graph
  serves all of them and the compile takes seconds, not minutes), with dynamic shapes because
  micro-batches differ in length.
"""
from __future__ import annotations

from typing import Callable

import torch

# transformers model_type -> Liger's function that patches an instance of that family.
LIGER_FAMILIES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3", "gemma": "gemma",
                  "gemma2": "gemma2", "phi3": "phi3", "granite": "granite", "olmo2": "olmo2"}


def _liger_available() -> bool:
    try:
        import liger_kernel.transformers  # noqa: F401
    except Exception:  # not installed, or no Triton / CUDA underneath
        return False
    return True


def use_fused_kernels(setting: str, device: torch.device, model_type: str, available: bool) -> tuple[bool, str]:
    """(use them, why not in plain words) for training.fused_kernels = auto | on | off."""
    if setting == "off":
        return False, ""
    if device.type != "cuda":
        return False, "fused kernels run on CUDA GPUs only" if setting == "on" else ""
    if model_type not in LIGER_FAMILIES:
        return False, f"Liger Kernel does not support the '{model_type}' model family" if setting == "on" else ""
    if not available:
        return False, ("the liger-kernel package is not installed (pip install 'tunesmith[gpu]')"
                       if setting == "on" else "")
    return True, ""


def apply_fused_kernels(model: torch.nn.Module, setting: str, device: torch.device,
                        notice: Callable[[str], None] = lambda message: None) -> bool:
    """Patch `model` (a transformers causal LM, inside PEFT or not) with Liger's fused layers where they apply.

    The vocabulary projection and loss stay ours (engine.train.loss computes logits only where
    labels are), so Liger's own fused cross-entropy is not used.
    """
    lm = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    model_type = getattr(getattr(lm, "config", None), "model_type", "")
    use, why = use_fused_kernels(setting, device, model_type, _liger_available() if setting != "off" else False)
    if why:
        notice(f"Fused kernels are not used: {why}.")
    if not use:
        return False
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=lm, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)
    return True


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated decoder layers of a transformers causal LM (inside PEFT or not)."""
    lm = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    body = lm.get_decoder() if callable(getattr(lm, "get_decoder", None)) else lm
    layers = getattr(body, "layers", None)
    return list(layers) if layers is not None else []


def compile_decoder_layers(model: torch.nn.Module, setting: str, device: torch.device, *, backend: str = "inductor",
                           notice: Callable[[str], None] = lambda message: None) -> int:
    """torch.compile each decoder layer in place for training.compile = on; returns how many were compiled."""
    if setting != "on":
        return 0
    if device.type != "cuda" and backend == "inductor":
        notice("Compiling the model is only done on CUDA GPUs (on a CPU it costs minutes and gains little).")
        return 0
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(backend=backend, dynamic=True)
    return len(layers)
