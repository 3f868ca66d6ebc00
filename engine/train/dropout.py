"""LoRA's dropout with a cheaper source of randomness on CPUs.

PEFT drops out the input of every LoRA layer with nn.Dropout, whose mask comes from bernoulli_:
one random draw per element, slow on a CPU (5.5 ms for a 1024 x 576 input here). With LoRA on
the seven linear layers of all 30 blocks of the starter model that was 1.2 s of a 10.4 s pass.
WordDropout draws 64-bit random words and reads four 16-bit uniform numbers out of each: the same
distribution (p rounded to a multiple of 1/65536), about 3x cheaper. GPUs keep nn.Dropout, whose
fused kernel is already fast.
"""
from __future__ import annotations

import torch
from torch import nn

LEVELS = 1 << 16  # 16-bit draws


def _scaled_mask(keep: torch.Tensor, scale: float, like: torch.Tensor) -> torch.Tensor:
    return torch.where(keep, torch.tensor(scale, dtype=like.dtype, device=like.device),
                       torch.zeros((), dtype=like.dtype, device=like.device))


class _MaskedScale(torch.autograd.Function):
    """x * keep * scale, keeping only the boolean mask for the backward pass (as nn.Dropout does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * _scaled_mask(keep, scale, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * _scaled_mask(keep, ctx.scale, grad), None, None


class WordDropout(nn.Module):
    """nn.Dropout(p): zeroes each element with probability p and scales the rest by 1/(1-p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        # Draws are signed 16-bit integers, uniform over [-32768, 32767]; below the threshold drops.
        self.threshold = -(LEVELS // 2) + round(p * LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        n = x.numel()
        words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return _MaskedScale.apply(x, keep, 1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_word_dropout(model: nn.Module) -> int:
    """Swap every nn.Dropout of the model's LoRA layers for WordDropout; returns how many were swapped."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is nn.Dropout and dropout.p < 1:
                dropouts[name] = WordDropout(dropout.p)
                swapped += 1
    return swapped
