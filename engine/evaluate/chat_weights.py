"""How chat stores a run's linear layers on a CPU: fewer bytes per weight, so more tokens per second.

Decoding one token reads every weight once, so on a CPU chat speed is mostly memory speed divided
by the model's size (the starter model: 540 MB in fp32). Chat keeps the linear layers in a 16-bit
copy instead, in one of two formats:

- fp16 weights with fp32 inputs, outputs and sums (fbgemm's packed fp16 GEMM, built for AVX2 and
  newer x86 CPUs): only the weight is rounded, to 11 significant bits. The default wherever fbgemm
  runs: measured 3-4x faster than fp32 per decode step on one core, and 18x closer to fp32 than bf16.
- bf16 weights through oneDNN's packed layout (CPUs with AVX512-BF16 or AMX): inputs and outputs
  are rounded to bf16 too (8 significant bits), so answers drift from fp32 sooner. Kept as an option.

int8 weight-only (torch._weight_int8pack_mm) and dynamic int8 (fbgemm, int8 activations) were
measured too: the first is 2-10x slower than fp32 per step on both CPU kinds measured, the second
slower than fp16 and far less faithful (see BENCHMARKS.md).

For LoRA runs each layer holds two finished copies, base and tuned (the LoRA update added in fp32
before rounding), so switching sides swaps a pointer and no LoRA product runs per token; the
embedding, norms and attention stay fp32. Chat only: training, evaluation and export never see
these layers.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import nn

from engine.evaluate.runfolder import EvaluationError

FORMATS = ("auto", "fp32", "fp16", "bf16")
FORMAT_ENV = "TUNESMITH_CHAT_WEIGHTS"  # forces a format (benchmarks, tests, a user who wants exact fp32)


def _fbgemm_fp16() -> bool:
    try:
        torch.ops.quantized.linear_prepack_fp16(torch.zeros(8, 8), None)
        return True
    except (AttributeError, RuntimeError):
        return False


def _onednn_bf16() -> bool:
    # Tried rather than looked up: oneDNN can be limited below what the CPU reports (ONEDNN_MAX_CPU_ISA).
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 8, dtype=torch.bfloat16), 1)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def available_formats() -> tuple[str, ...]:
    """The 16-bit formats this CPU and PyTorch build can run (fp32 always can)."""
    return tuple(name for name, works in (("fp16", _fbgemm_fp16()), ("bf16", _onednn_bf16())) if works)


def chat_weight_format(device: torch.device, requested: Optional[str] = None) -> str:
    """The weight format chat uses on `device`: 'fp32', 'fp16' or 'bf16' ('auto' decides by the CPU).

    GPUs already run chat in 16-bit (engine.evaluate.loading) and keep that ('fp32' here means: leave
    the loaded weights as they are). A format the CPU cannot run falls back to fp32.
    """
    requested = (requested or os.environ.get(FORMAT_ENV) or "auto").strip().lower()
    if requested not in FORMATS:
        raise EvaluationError(f"{FORMAT_ENV}={requested!r} is not a chat weight format: use one of "
                              f"{', '.join(FORMATS)}.")
    if device.type != "cpu" or requested == "fp32":
        return "fp32"
    available = available_formats()
    if requested == "auto":
        return "fp16" if "fp16" in available else "fp32"
    return requested if requested in available else "fp32"


class ChatLinear(nn.Module):
    """A frozen linear layer in fp16 or bf16 holding one weight per side ("base", and "tuned" when it differs).

    `use(side)` picks the weight the next forward passes read. Input and output stay fp32.
    """

    def __init__(self, weights: dict[str, torch.Tensor], bias: Optional[torch.Tensor], fmt: str):
        super().__init__()
        if fmt not in ("fp16", "bf16"):
            raise ValueError(f"ChatLinear stores fp16 or bf16, not {fmt!r}")
        self.fmt = fmt
        self.out_features, self.in_features = weights["base"].shape
        self.bias = None if bias is None else bias.detach().float().clone()
        self.packed: dict[str, Any] = {side: self._pack(weight.detach().float()) for side, weight in weights.items()}
        self.use("base")

    def _pack(self, weight: torch.Tensor) -> Any:
        if self.fmt == "fp16":
            # fbgemm's packed fp16 matrix, bias included: y = x @ W.T + b with fp32 x, y and sums.
            return torch.ops.quantized.linear_prepack_fp16(weight.contiguous(), self.bias)
        # oneDNN's own blocked layout: measured 2x fp32 on one core (plain F.linear in bf16 is no faster).
        return torch.ops.mkldnn._reorder_linear_weight(weight.to(torch.bfloat16).contiguous(), 1)

    def use(self, side: str) -> None:
        self.weight = self.packed.get(side, self.packed["base"])

    def dequantized(self, side: str = "base") -> torch.Tensor:
        """The fp32 weight this layer actually multiplies by for `side` (for checks and tests)."""
        packed = self.packed.get(side, self.packed["base"])
        if self.fmt == "fp16":
            return torch.ops.quantized.linear_unpack_fp16(packed)[0].float()
        return packed.to_dense().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fmt == "fp16":
            return torch.ops.quantized.linear_dynamic_fp16(x.float(), self.weight).to(x.dtype)
        out = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.weight, None, "none", [], "")
        out = out.to(x.dtype)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.fmt}, sides={sorted(self.packed)}"


def _lora_weights(layer) -> Optional[dict[str, torch.Tensor]]:
    """Base and tuned fp32 weights of a PEFT LoRA layer, or None when its update cannot be folded in."""
    base = layer.get_base_layer()
    if not isinstance(base, nn.Linear) or getattr(layer, "merged", False):
        return None
    names = [name for name in layer.active_adapters if name in getattr(layer, "lora_A", {})]
    if any(getattr(layer, "use_dora", {}).get(name, False) for name in names):
        return None  # DoRA rescales the weight: not a plain sum
    weight = base.weight.detach().float()
    tuned = weight.clone()
    for name in names:
        tuned += layer.get_delta_weight(name).detach().float()
    return {"base": weight, "tuned": tuned}


def convert_for_chat(model: nn.Module, fmt: str) -> list[ChatLinear]:
    """Replace `model`'s linear layers (LoRA layers included) with ChatLinear copies in `fmt`, in place.

    LoRA layers become one ChatLinear with a base and a tuned weight; every other linear layer one
    shared weight. Returns the new layers, whose `use(side)` switches the model between sides.
    Layers that cannot be folded (DoRA, a LoRA layer around something other than nn.Linear) keep
    their precision. Prefix and prompt tuning's own modules are left alone (only the base model is
    walked).
    """
    if fmt == "fp32":
        return []
    from peft.tuners.lora import LoraLayer

    get_base = getattr(model, "get_base_model", None)
    converted: list[ChatLinear] = []

    def walk(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                weights = _lora_weights(child)
                base = child.get_base_layer()
            elif isinstance(child, nn.Linear):
                weights, base = {"base": child.weight}, child
            else:
                walk(child)
                continue
            if weights is None:
                continue
            layer = ChatLinear(weights, base.bias, fmt)
            setattr(parent, name, layer)
            converted.append(layer)

    walk(get_base() if callable(get_base) else model)
    return converted
