"""The optimizer: AdamW, or bitsandbytes' 8-bit AdamW (paged on a GPU) where its memory saving matters.

AdamW keeps two fp32 numbers per trained weight. For LoRA that is a few MB; for full fine-tuning
of a 1B model it is 8 GB, more than the weights in bf16. The 8-bit optimizer keeps them in 8 bits
(block-wise quantized, 2 GB there), and the paged variant lets them spill to CPU memory instead of
failing when the GPU runs out (the QLoRA paper's paged optimizers).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

OPTIMIZERS = ("auto", "adamw", "adamw_8bit", "paged_adamw_8bit")
# Below this many trained parameters the fp32 states are too small to be worth 8-bit rounding.
EIGHT_BIT_FROM_PARAMS = 50_000_000


def _bitsandbytes_problem(device: torch.device, paged: bool) -> str:
    """Why bitsandbytes' 8-bit optimizer cannot run here, in plain words, or ''."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # a broken install raises all sorts of errors at import
        return f"the bitsandbytes library could not be loaded ({exc.__class__.__name__})"
    if paged and device.type != "cuda":
        return "paged optimizers need a CUDA GPU"
    return ""


def choose_optimizer(setting: str, device: torch.device, trainable_params: int) -> str:
    """Resolve training.optimizer: 'auto' takes paged 8-bit AdamW on a GPU when the trained weights are
    many (full fine-tuning of larger models), plain AdamW otherwise."""
    if setting != "auto":
        return setting
    if device.type == "cuda" and trainable_params >= EIGHT_BIT_FROM_PARAMS \
            and not _bitsandbytes_problem(device, paged=True):
        return "paged_adamw_8bit"
    return "adamw"


def make_optimizer(setting: str, params: Iterable[torch.nn.Parameter], device: torch.device, *, lr: float,
                   weight_decay: float, notice: Callable[[str], None] = lambda message: None) -> torch.optim.Optimizer:
    """The optimizer for `params` as training.optimizer says; falls back to AdamW with a notice where
    an 8-bit one cannot run."""
    params = list(params)
    name = choose_optimizer(setting, device, sum(p.numel() for p in params))
    betas = (0.9, 0.999)
    if name in ("adamw_8bit", "paged_adamw_8bit"):
        problem = _bitsandbytes_problem(device, paged=name.startswith("paged"))
        if not problem:
            import bitsandbytes as bnb

            kind = bnb.optim.PagedAdamW8bit if name.startswith("paged") else bnb.optim.AdamW8bit
            return kind(params, lr=lr, weight_decay=weight_decay, betas=betas)
        notice(f"The {name} optimizer is not possible here: {problem}. Using AdamW, which needs more memory "
               "but learns the same way.")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
