"""The seeded train / validation / test split, sized for small datasets.

Validation is looked at during training (it picks the best step and stops training early), so its
numbers flatter the tuned model; test is never looked at until the before/after evaluation.
Identical examples are kept together in one part: a copy in training and its twin in test would
make the test measure memory instead of skill.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from engine.words import count

MEANINGFUL_HELDOUT = 20  # fewer held-out examples than this give numbers that are mostly noise
MIN_PART = 5  # each held-out part gets at least this many when the data allows ...
MIN_TRAIN_SHARE = 0.6  # ... but the minimums never take training below 60% of the data


@dataclass
class Split:
    """The three parts, each in file order, and plain-words warnings about their sizes."""

    train: list
    val: list
    test: list
    val_warnings: list = field(default_factory=list)
    test_warnings: list = field(default_factory=list)

    @property
    def warnings(self) -> list:
        return self.val_warnings + self.test_warnings


def part_sizes(total: int, val_fraction: float, test_fraction: float, val_max: int, test_max: int) -> tuple[int, int]:
    """How many examples validation and test get.

    Each part asked for (fraction above 0) gets its fraction of `total`, raised to MIN_PART and cut to
    its max; raising to the minimum never leaves training with less than MIN_TRAIN_SHARE of the data, and
    training always keeps at least one example. When the parts must shrink, the larger one gives first.
    """
    if total < 2:
        return 0, 0
    fractions, caps = (val_fraction, test_fraction), (val_max, test_max)
    asked = [min(round(total * f), cap) if f > 0 else 0 for f, cap in zip(fractions, caps)]
    sizes = [min(max(a, MIN_PART), cap) if f > 0 else 0 for a, f, cap in zip(asked, fractions, caps)]
    room = min(max(sum(asked), int(total * (1 - MIN_TRAIN_SHARE))), total - 1)
    while sum(sizes) > room:
        larger = 0 if sizes[0] > sizes[1] else 1  # on a tie test gives first: validation steers training
        sizes[larger] -= 1
    return sizes[0], sizes[1]


def split_examples(examples: list, *, val_fraction: float, test_fraction: float, seed: int, val_max: int = 200,
                   test_max: int = 200) -> Split:
    """Split `examples` into train / validation / test; the same seed gives the same split.

    Examples are grouped by content (Example.content_key) and whole groups are dealt out in a seeded
    order, so identical examples always land in the same part. A group that would overfill a part
    goes on to the next part (or to training), so part sizes are exact whenever single examples
    are left to fill them.
    """
    val_size, test_size = part_sizes(len(examples), val_fraction, test_fraction, val_max, test_max)
    groups: dict = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.content_key(), []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    val_rows: list[int] = []
    test_rows: list[int] = []
    for group in order:
        if len(val_rows) + len(group) <= val_size:
            val_rows.extend(group)
        elif len(test_rows) + len(group) <= test_size:
            test_rows.extend(group)
    held_out = set(val_rows) | set(test_rows)
    split = Split(train=[e for i, e in enumerate(examples) if i not in held_out],
                  val=[examples[i] for i in sorted(val_rows)], test=[examples[i] for i in sorted(test_rows)])
    split.val_warnings = validation_warnings(len(split.val), len(examples), val_fraction)
    split.test_warnings = warnings_for_test_part(len(split.test), len(examples), test_fraction)
    return split


def split_as_configured(examples: list, data) -> Split:
    """The split `data` (a DataConfig) asks for; a part given as its own file (val_path, test_path)
    is not split off the training data, and its warnings are left to whoever reads that file."""
    split = split_examples(examples, val_fraction=0.0 if data.val_path else data.val_fraction,
                           test_fraction=0.0 if data.test_path else data.test_fraction, seed=data.seed,
                           val_max=data.val_max_rows, test_max=data.test_max_rows)
    if data.val_path:
        split.val_warnings = []
    if data.test_path:
        split.test_warnings = []
    return split


def _only(total: int) -> str:
    return f"there {'is' if total == 1 else 'are'} only {count(total, 'example')}"


def validation_warnings(val_count: int, total: int, val_fraction: float = 0.1) -> list[str]:
    """Plain-words warnings when validation cannot tell overfitting apart from learning."""
    if val_count == 0:
        why = "validation is turned off" if val_fraction <= 0 else _only(total)
        return [f"No validation examples ({why}): overfitting cannot be seen and early stopping is off. "
                "Hold out some examples or give a separate validation file."]
    if val_count < MEANINGFUL_HELDOUT:
        return [f"Only {count(val_count, 'validation example')}: the validation loss will jump around and says "
                "little. Use more data, a larger validation share, or a separate validation file."]
    return []


def warnings_for_test_part(test_count: int, total: int, test_fraction: float = 0.1) -> list[str]:
    """Plain-words warnings when the test part is too small for the before/after numbers to mean much."""
    if test_count == 0:
        why = "the test share is 0" if test_fraction <= 0 else _only(total)
        return [f"No test examples ({why}): the before/after evaluation will use the validation examples, which "
                "also chose the best step, so it flatters the tuned model. Keep a test share or give a test file."]
    if test_count < MEANINGFUL_HELDOUT:
        step = 100 / test_count
        return [f"Only {count(test_count, 'test example')}: one answer more or less moves exact match by "
                f"{step:.0f} points, so the before/after numbers are rough. Use more data or a separate test file."]
    return []


def overlap_warning(part: str, part_examples: list, train_examples: list) -> list[str]:
    """A warning when examples of `part` (e.g. "test file") also appear, word for word, in training."""
    trained = {example.content_key() for example in train_examples}
    copies = [example.row for example in part_examples if example.content_key() in trained]
    if not copies:
        return []
    rows = ", ".join(str(row) for row in copies[:5]) + (" ..." if len(copies) > 5 else "")
    return [f"The {part} has {count(len(copies), 'example')} that also appear in the training data (rows {rows} "
            f"of the {part}): the model has learned their answers by heart, so its scores on them flatter it. "
            "Remove them from one of the files."]
