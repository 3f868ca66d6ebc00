"""The seeded train / validation / test split: sizes for small sets, disjoint parts, copies kept
together, warnings in plain words, and a separate test file."""
from __future__ import annotations

import itertools
import json

import pytest

from engine.config import RunConfig
from engine.data.build import build_training_data
from engine.data.formats import Example
from engine.data.split import MIN_PART, overlap_warning, part_sizes, split_examples
from engine.templates import load_tokenizer


def texts(count: int, copies: int = 1) -> list[Example]:
    """`count` rows; with `copies` > 1, every distinct text appears `copies` times, spread through the file."""
    return [Example(row=i + 1, text=f"example {i % (count // copies)}") for i in range(count)]


def split(examples, val=0.1, test=0.1, seed=42):
    return split_examples(examples, val_fraction=val, test_fraction=test, seed=seed)


@pytest.mark.parametrize("total,val,test,expected", [
    (600, 0.1, 0.1, (60, 60)),     # the fraction above the minimum
    (5000, 0.1, 0.1, (200, 200)),  # capped at the max rows
    (30, 0.1, 0.1, (5, 5)),        # raised to the minimum of 5 each
    (20, 0.1, 0.1, (4, 4)),        # the minimums never take training below 60%
    (10, 0.1, 0.1, (2, 2)),
    (4, 0.1, 0.1, (1, 0)),         # too little for both: validation (it steers training) keeps one
    (2, 0.1, 0.1, (0, 0)),
    (1, 0.1, 0.1, (0, 0)),
    (100, 0.1, 0.0, (10, 0)),      # a part turned off stays off
    (50, 0.0, 0.1, (0, 5)),
    (2, 0.5, 0.0, (1, 0)),         # training always keeps at least one
])
def test_part_sizes(total, val, test, expected):
    assert part_sizes(total, val, test, 200, 200) == expected


def test_part_sizes_always_leave_training_something_and_respect_minimums():
    for total, val, test in itertools.product(range(1, 160), (0.0, 0.05, 0.1, 0.3, 0.5), (0.0, 0.1, 0.5)):
        val_size, test_size = part_sizes(total, val, test, 200, 200)
        assert total - val_size - test_size >= (1 if total else 0)
        if total >= 50 and val > 0:
            assert val_size >= MIN_PART
        if (val, test) == (0.1, 0.1) and total >= 5:
            assert total - val_size - test_size >= 0.6 * total


def test_split_is_seeded_disjoint_and_keeps_file_order():
    examples = texts(100)
    first, again, other = split(examples), split(examples), split(examples, seed=7)
    assert (len(first.train), len(first.val), len(first.test)) == (80, 10, 10)
    rows = [[e.row for e in part] for part in (first.train, first.val, first.test)]
    assert sorted(sum(rows, [])) == list(range(1, 101))  # every example once: no index lands twice
    assert all(part == sorted(part) for part in rows)
    assert [e.row for e in again.test] == rows[2] and [e.row for e in again.val] == rows[1]
    assert [e.row for e in other.test] != rows[2]


def test_copies_of_an_example_never_sit_in_two_parts():
    examples = texts(90, copies=3)  # 30 distinct texts, each three times
    for seed in range(5):
        parts = split(examples, val=0.2, test=0.2, seed=seed)
        keys = [{e.content_key() for e in part} for part in (parts.train, parts.val, parts.test)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert sorted(e.row for e in parts.train + parts.val + parts.test) == list(range(1, 91))
        assert (len(parts.val), len(parts.test)) == (18, 18)  # whole groups of three fill each part exactly


def test_small_parts_warn_in_plain_words_with_the_right_plural():
    tiny = split(texts(4))
    assert "Only 1 validation example:" in " ".join(tiny.warnings)
    assert "No test examples (there are only 4 examples)" in " ".join(tiny.warnings)
    small = split(texts(30))
    assert any(w.startswith("Only 5 validation examples:") for w in small.warnings)
    assert any(w.startswith("Only 5 test examples: one answer more or less moves exact match by 20 points")
               for w in small.warnings)
    assert split(texts(600)).warnings == []
    off = split(texts(600), test=0.0)
    assert any("No test examples (the test share is 0)" in w and "flatters" in w for w in off.warnings)


def test_overlap_between_a_test_file_and_training_is_named():
    train = texts(10)
    test = [Example(row=1, text="example 3"), Example(row=2, text="something new")]
    warning = overlap_warning("test file", test, train)
    assert len(warning) == 1 and "1 example that also appear" in warning[0] and "rows 1 of the test file" in warning[0]
    assert overlap_warning("test file", test[1:], train) == []


def _alpaca(path, prompts, answer="Paris."):
    path.write_text(json.dumps([{"instruction": p, "output": answer} for p in prompts]), encoding="utf-8")
    return str(path)


def test_build_reads_a_separate_test_file(tmp_path, tiny_model_dir):
    config = RunConfig()
    config.data.path = _alpaca(tmp_path / "train.json", [f"Question {i}?" for i in range(40)])
    config.data.test_path = _alpaca(tmp_path / "test.json", ["Question 3?", "A new question?"], answer="Rome.")
    data = build_training_data(config, load_tokenizer(tiny_model_dir))
    # The training file gives only training and validation rows; the test rows are the test file's.
    assert (len(data.train), len(data.val), len(data.test_examples)) == (35, 5, 2)
    assert [e.messages[-1]["content"] for e in data.test_examples] == ["Rome.", "Rome."]
    assert any("Only 2 test examples" in w for w in data.warnings)
    # "Question 3?" with another answer is a different example: no overlap warning.
    assert not any("also appear in the training data" in w for w in data.warnings)
    config.data.test_path = _alpaca(tmp_path / "test.json", ["Question 3?", "Question 4?"])
    data = build_training_data(config, load_tokenizer(tiny_model_dir))
    assert any("The test file has 2 examples that also appear in the training data" in w for w in data.warnings)
