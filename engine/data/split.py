"""The seeded train/validation split, sized for small datasets."""
from __future__ import annotations

import random

MEANINGFUL_VAL = 20  # fewer held-out examples than this give a validation loss that is mostly noise


def validation_size(total: int, val_fraction: float, max_val: int) -> int:
    """How many examples to hold out: the fraction, at least 1 and at most `max_val`, never all of them."""
    if val_fraction <= 0 or total < 2:
        return 0
    wanted = max(1, round(total * val_fraction))
    return max(0, min(wanted, max_val, total - 1))


def split_examples(examples: list, val_fraction: float, seed: int, max_val: int) -> tuple[list, list, list]:
    """Split into (train, val, warnings); the same seed gives the same split, both keep file order."""
    count = validation_size(len(examples), val_fraction, max_val)
    chosen = set(random.Random(seed).sample(range(len(examples)), count)) if count else set()
    train = [e for i, e in enumerate(examples) if i not in chosen]
    val = [e for i, e in enumerate(examples) if i in chosen]
    return train, val, validation_warnings(len(val), len(examples), val_fraction)


def validation_warnings(val_count: int, total: int, val_fraction: float = 0.1) -> list[str]:
    """Plain-words warnings when validation cannot tell overfitting apart from learning."""
    if val_count == 0:
        why = "validation is turned off" if val_fraction <= 0 else f"there is only {total} example"
        return [f"No validation examples ({why}): overfitting cannot be seen and early stopping is off. "
                "Hold out some examples or give a separate validation file."]
    if val_count < MEANINGFUL_VAL:
        return [f"Only {val_count} validation examples: the validation loss will jump around and says little. "
                "Use more data, a larger validation share, or a separate validation file."]
    return []
