"""Token-length statistics: the fast batched lengths must equal what rendering produces."""
from __future__ import annotations

import pytest

from engine.data.formats import Example
from engine.data.stats import _percentile, token_lengths, token_stats
from engine.templates import load_tokenizer, render


def examples() -> list[Example]:
    chats = [Example(row=i, messages=[{"role": "user", "content": "What is the capital of France? " * i},
                                      {"role": "assistant", "content": "Paris. " * (i % 3 + 1)}])
             for i in range(1, 9)]
    return chats + [Example(row=9, text="The quick brown fox jumps over the lazy dog. " * 5)]


@pytest.mark.parametrize("template", ["auto", "llama3"])
def test_lengths_equal_rendered_lengths(tiny_model_dir, template):
    tokenizer = load_tokenizer(tiny_model_dir, template=template)
    items = examples()
    expected = [render(e, tokenizer, max_length=10_000).full_length for e in items]
    assert token_lengths(items, tokenizer, batch_size=4) == expected


def test_stats_summary_and_rows_over_the_limit(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    items = examples()
    lengths = token_lengths(items, tokenizer)
    limit = sorted(lengths)[5]
    stats = token_stats(items, tokenizer, max_length=limit)
    assert (stats.count, stats.min, stats.max) == (9, min(lengths), max(lengths))
    assert stats.median == sorted(lengths)[4]
    assert stats.over_limit_rows == [e.row for e, n in zip(items, lengths) if n > limit]
    assert stats.over_limit == len(stats.over_limit_rows) == 3
    assert set(stats.to_dict()) == {"count", "min", "median", "p95", "max", "max_length", "over_limit",
                                    "over_limit_rows"}


def test_empty_input_and_percentile():
    assert token_stats([], None, max_length=8).count == 0
    ordered = list(range(1, 101))
    assert (_percentile(ordered, 0.5), _percentile(ordered, 0.95), _percentile([7], 0.95)) == (51, 95, 7)
