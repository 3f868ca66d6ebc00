"""Validation loss and perplexity of a model on rendered examples (answer tokens only) or on plain text."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional

# Perplexity = exp(loss); above this loss the number is astronomically large and means "lost".
_MAX_LOSS_FOR_PERPLEXITY = 50.0


def perplexity(loss: Optional[float]) -> Optional[float]:
    """exp(loss): how many equally likely next tokens the model is choosing between, on average."""
    if loss is None or math.isnan(loss):
        return None
    return math.exp(min(loss, _MAX_LOSS_FOR_PERPLEXITY))


def token_weighted_loss(model, sequences: Iterable[tuple[list[int], list[int]]],
                        on_item: Optional[Callable[[], None]] = None, stop: Any = None) -> Optional[float]:
    """Mean cross-entropy per learned token over (input_ids, labels) pairs (labels -100 where not learned).

    Each sequence runs on its own (no padding to get wrong); long and short examples weigh by their
    number of learned tokens, as in training. None when nothing had a learned token.
    """
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for input_ids, labels in sequences:
            if stop is not None and stop.is_set():
                break
            learned = sum(1 for label in labels[1:] if label != -100)
            if learned:
                ids = torch.tensor([input_ids], device=device)
                targets = torch.tensor([labels], device=device)
                loss = model(input_ids=ids, labels=targets).loss
                total += float(loss) * learned
                count += learned
            if on_item:
                on_item()
    return total / count if count else None


def text_loss(model, tokenizer, text: str, max_length: int = 1024) -> Optional[float]:
    """Loss on a plain text (every token learned), cut to `max_length` tokens."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"][:max_length]
    return token_weighted_loss(model, [(ids, list(ids))])
