"""Proving the speed levers on this model before training: one small batch, computed both ways.

engine.families decides from the model's configuration which levers its family can take (the
per-example attention kernel, the labelled-positions-only loss). This module checks that decision on
the run's own data before the first step: a few short training examples go through the training path
(packed as the loop packs them, with the chosen attention and loss), and as a padded batch through the
model's own forward with the model's own attention, `model(input_ids, attention_mask, labels).loss`,
which is what transformers defines as the loss. When the two disagree, the levers are switched off for this
run, the kernel and the lighter loss first, then packing, until they agree.

The outcome, and any lever the allow-list already refused, is said once, in plain words.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch

from engine.families import family_name, kernel_problem, loss_problem
from engine.train.batching import make_micro_batches
from engine.train.loss import TokenLoss, causal_lm_of, is_prompt_learning, uses_packed_kernel

SAMPLE_EXAMPLES = 3  # examples in the check: enough for a packed row of several
SAMPLE_POOL = 32  # the shortest are taken from the first this many, so the check costs a fraction of a step
# Largest relative difference of the mean loss accepted as rounding. In bf16 the two paths round
# differently (measured on the starter model: under 0.3%); a soft-cap or window left out moves a real
# model's loss by far more.
TOLERANCE = {"fp32": 1e-4, "bf16": 1e-2, "fp16": 1e-2}


def own_attention(lm: torch.nn.Module, setting: str) -> str:
    """The attention the model itself would use: SDPA where the model supports it, else eager."""
    if setting == "eager" or not getattr(lm, "_supports_sdpa", False):
        return "eager"
    return "sdpa"


@contextlib.contextmanager
def attention_as(lm: torch.nn.Module, implementation: str):
    """Run the model with another attention implementation for a while."""
    before = lm.config._attn_implementation
    if before == implementation:
        yield
        return
    lm.set_attn_implementation(implementation)
    try:
        yield
    finally:
        lm.set_attn_implementation(before)


def _sample(examples: Sequence) -> list[int]:
    pool = range(min(len(examples), SAMPLE_POOL))
    return sorted(sorted(pool, key=lambda i: len(examples[i].input_ids))[:SAMPLE_EXAMPLES])


def reference_loss(model: torch.nn.Module, examples: Sequence, indices: list[int], attention: str,
                   pad_id: int) -> float:
    """Mean token loss of the examples through the model's own forward and attention: one padded batch
    with its attention mask and labels, `model(input_ids, attention_mask, labels).loss`."""
    lm = causal_lm_of(model)
    device = next(model.parameters()).device
    (batch,) = make_micro_batches(examples, indices, packing=False, max_length=0, micro_batch_size=0, pad_id=pad_id)
    batch = batch.to(device)
    with attention_as(lm, attention):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels,
                    use_cache=False)
    return float(out.loss)


def training_loss(loss_module: TokenLoss, examples: Sequence, indices: list[int], *, packing: bool,
                  max_length: int, pad_id: int) -> float:
    """Mean token loss of the examples through the training path, in one pass as the loop would batch them."""
    device = next(loss_module.model.parameters()).device
    batches = make_micro_batches(examples, indices, packing=packing and loss_module.can_pack,
                                 max_length=max_length, micro_batch_size=0, pad_id=pad_id)
    total, count = 0.0, 0
    for batch in batches:
        part, n = loss_module(batch.to(device))
        total, count = total + float(part), count + int(n)
    return total / max(1, count)


def _static_refusals(loss_module: TokenLoss, config) -> list[str]:
    """The levers the allow-list refused for this model, in words (only those the settings asked for)."""
    lm = causal_lm_of(loss_module.model)
    t = config.training
    reasons = []
    prompt_learning = is_prompt_learning(loss_module.model)
    if t.attention == "sdpa" and t.packing and not prompt_learning:
        problem = kernel_problem(lm.config, config.data.max_length)
        if problem:
            reasons.append(f"its own attention, because {problem}")
    if t.label_only_logits and not prompt_learning:
        problem = loss_problem(lm.config)
        if problem:
            reasons.append(f"its own loss computation, because {problem}")
    return reasons


def check_levers(loss_module: TokenLoss, config, examples: Sequence, pad_id: int, precision: str,
                 autocast=contextlib.nullcontext) -> Optional[str]:
    """Check one batch both ways, switch levers off where they disagree; returns the one notice to give, or None.

    `autocast` makes the context the loop trains under, so both sides round as training will.
    """
    model = loss_module.model
    lm = causal_lm_of(model)
    indices = _sample(examples)
    reasons = _static_refusals(loss_module, config)
    if not indices:
        return None
    tolerance = TOLERANCE.get(precision, TOLERANCE["bf16"])
    own = own_attention(lm, config.training.attention)
    packing, max_length = config.training.packing, config.data.max_length
    was_training = model.training
    model.eval()  # dropout off: both sides must see the same network
    try:
        with torch.no_grad(), autocast():
            expected = reference_loss(model, examples, indices, own, pad_id)

            def differs() -> Optional[float]:
                got = training_loss(loss_module, examples, indices, packing=packing, max_length=max_length,
                                    pad_id=pad_id)
                gap = abs(got - expected) / max(abs(expected), 1e-6)
                return gap if gap > tolerance else None

            gap = differs()
            if gap is not None and (uses_packed_kernel(model) or loss_module.fast):
                if uses_packed_kernel(model):
                    lm.set_attn_implementation(own)
                loss_module.fast = False
                reasons.append(f"its own attention and loss computation, because on a first batch the faster "
                               f"ones gave a loss {gap:.2%} away from the model's own")
                gap = differs()
            if gap is not None and packing and loss_module.can_pack:
                loss_module.can_pack = False
                reasons.append("no packing of several examples per row, because packed rows gave a loss "
                               f"{gap:.2%} away from the examples on their own")
                gap = differs()
            if gap is not None:
                reasons.append(f"no further change, although a first batch still gives a loss {gap:.2%} away "
                               "from the model's own forward pass; please report this model")
    finally:
        model.train(was_training)
    if not reasons:
        return None
    return (f"This {family_name(lm.config)} model trains with " + "; with ".join(reasons)
            + ". The results are exact; training is slower than with the faster paths.")
