"""95% intervals for accuracies and for the paired difference between two models on the same items.

- One accuracy (k right out of n): the Wilson score interval, which keeps its coverage for small n
  and for accuracies near 0 or 1, where the textbook "p +- 1.96 SE" interval does not.
- Tuned minus base on the SAME items: a paired bootstrap. Only the items where the two models
  disagree carry information (McNemar's insight), so resampling items is the same as drawing the
  counts (tuned right only, base right only, rest) from a multinomial; that is what is done here,
  seeded, so the same results always give the same interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

Z95 = 1.959963984540054
BOOTSTRAP_ROUNDS = 4000
BOOTSTRAP_SEED = 20240611


def wilson_interval(right: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson score interval of the accuracy right/total; (0, 1) when there are no items."""
    if total <= 0:
        return 0.0, 1.0
    p = right / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedDifference:
    """Tuned minus base accuracy on the same items, with its 95% interval."""

    value: float
    low: float
    high: float
    gained: int  # items only the tuned model got right
    lost: int  # items only the base model got right
    total: int

    @property
    def below_zero(self) -> bool:
        """Worse beyond noise: the whole interval lies below zero."""
        return self.high < 0

    @property
    def above_zero(self) -> bool:
        return self.low > 0


def paired_difference(base: Sequence[bool], tuned: Sequence[bool], *, rounds: int = BOOTSTRAP_ROUNDS,
                      seed: int = BOOTSTRAP_SEED) -> PairedDifference:
    """The paired bootstrap described in the module docstring; `base[i]` and `tuned[i]` judge the same item."""
    import numpy as np

    if len(base) != len(tuned):
        raise ValueError("base and tuned must judge the same items")
    total = len(base)
    gained = sum(1 for b, t in zip(base, tuned) if t and not b)
    lost = sum(1 for b, t in zip(base, tuned) if b and not t)
    if total == 0:
        return PairedDifference(0.0, 0.0, 0.0, 0, 0, 0)
    value = (gained - lost) / total
    if gained + lost == 0:  # identical answers everywhere: no resample can differ
        return PairedDifference(0.0, 0.0, 0.0, 0, 0, total)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(total, [gained / total, lost / total, 1 - (gained + lost) / total], size=rounds)
    differences = (counts[:, 0] - counts[:, 1]) / total
    low, high = np.quantile(differences, [0.025, 0.975])
    return PairedDifference(value, float(low), float(high), gained, lost, total)
