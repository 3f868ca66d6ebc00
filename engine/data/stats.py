"""Token-length statistics for a whole dataset: min, median, p95, max, and how many exceed the limit.

Fast enough for 100k rows: each example is rendered to text once with the compiled template, and
the texts are tokenized in batches by the fast tokenizer's Rust core, without offsets or labels.
The lengths equal `engine.templates.render(...).full_length` for the same tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.templates import render_text

BATCH = 1024
LISTED_ROWS = 100  # how many over-limit row numbers a report names


@dataclass
class TokenStats:
    """Lengths in tokens (before truncation) over all examples, and those over `max_length`."""

    count: int
    min: int
    median: int
    p95: int
    max: int
    max_length: int
    over_limit: int
    over_limit_rows: list = field(default_factory=list)  # the first LISTED_ROWS row numbers over the limit
    lengths: list = field(default_factory=list, repr=False)  # per example, in the order given

    def to_dict(self) -> dict:
        return {"count": self.count, "min": self.min, "median": self.median, "p95": self.p95, "max": self.max,
                "max_length": self.max_length, "over_limit": self.over_limit,
                "over_limit_rows": list(self.over_limit_rows)}


def token_lengths(examples: list, tokenizer, batch_size: int = BATCH) -> list[int]:
    """Full length in tokens of each example, exactly as training renders it (BOS, template, EOS)."""
    lengths: list[int] = []
    if not examples:
        return lengths
    core = tokenizer.backend_tokenizer  # the Rust tokenizer: batch encoding without Python per token
    for start in range(0, len(examples), batch_size):
        texts = [render_text(example, tokenizer) for example in examples[start:start + batch_size]]
        lengths.extend(len(encoding.ids) for encoding in core.encode_batch(texts, add_special_tokens=False))
    return lengths


def _percentile(ordered: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def token_stats(examples: list, tokenizer, *, max_length: int) -> TokenStats:
    """Length statistics of `examples` (Example objects) with the tokenizer's template."""
    lengths = token_lengths(examples, tokenizer)
    if not lengths:
        return TokenStats(0, 0, 0, 0, 0, max_length, 0)
    ordered = sorted(lengths)
    over = [example.row for example, length in zip(examples, lengths) if length > max_length]
    return TokenStats(count=len(lengths), min=ordered[0], median=_percentile(ordered, 0.5),
                      p95=_percentile(ordered, 0.95), max=ordered[-1], max_length=max_length,
                      over_limit=len(over), over_limit_rows=over[:LISTED_ROWS], lengths=lengths)
