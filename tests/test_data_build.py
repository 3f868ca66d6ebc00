"""The seeded split and build_training_data: rendering, validation file, truncation, mix-in."""
from __future__ import annotations

import json

import pytest

from engine.config import RunConfig
from engine.data.build import build_training_data
from engine.data.errors import DataError
from engine.data.formats import Example
from engine.data.split import split_examples, validation_size
from engine.templates import IGNORE_INDEX, NOTHING_LEFT, load_tokenizer


def alpaca_file(path, count, answer="Paris.", prompt="What is the capital of France? {i}"):
    rows = [{"instruction": prompt.format(i=i), "output": answer} for i in range(count)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def config_for(path, **data) -> RunConfig:
    config = RunConfig()
    config.data.path = str(path)
    for key, value in data.items():
        setattr(config.data, key, value)
    return config


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


@pytest.mark.parametrize("total,fraction,max_val,expected", [
    (8, 0.1, 200, 1), (30, 0.1, 200, 3), (5000, 0.1, 200, 200), (1, 0.1, 200, 0), (50, 0.0, 200, 0), (2, 0.5, 200, 1),
])
def test_validation_size(total, fraction, max_val, expected):
    assert validation_size(total, fraction, max_val) == expected


def test_split_is_seeded_and_keeps_order():
    examples = [Example(row=i, text=str(i)) for i in range(1, 101)]
    train, val, warnings = split_examples(examples, 0.1, seed=42, max_val=200)
    again_train, again_val, _ = split_examples(examples, 0.1, seed=42, max_val=200)
    _, other_val, _ = split_examples(examples, 0.1, seed=7, max_val=200)
    assert [e.row for e in val] == [e.row for e in again_val] and len(val) == 10
    assert [e.row for e in val] != [e.row for e in other_val]
    assert sorted(e.row for e in train + val) == list(range(1, 101))
    assert [e.row for e in train] == sorted(e.row for e in train)
    assert any("Only 10 validation examples" in w for w in warnings)


def test_split_without_validation_warns():
    _, val, warnings = split_examples([Example(row=1, text="a"), Example(row=2, text="b")], 0.0, 1, 200)
    assert val == [] and "early stopping is off" in warnings[0]


def test_build_renders_and_splits(tmp_path, tokenizer):
    config = config_for(alpaca_file(tmp_path / "d.json", 30), max_length=128)
    data = build_training_data(config, tokenizer)
    assert (len(data.train), len(data.val), len(data.val_examples)) == (27, 3, 3)
    assert [r.row for r in data.val] == [e.row for e in data.val_examples]
    first = data.train[0]
    assert IGNORE_INDEX in first.labels and any(label != IGNORE_INDEX for label in first.labels)
    assert data.report.format == "alpaca" and data.report.rows_valid == 30
    assert any("Only 30 usable examples" in w for w in data.warnings)
    # The same config gives the same split.
    assert [e.row for e in build_training_data(config, tokenizer).val_examples] == [e.row for e in data.val_examples]


def test_build_train_on_prompt(tmp_path, tokenizer):
    data = build_training_data(config_for(alpaca_file(tmp_path / "d.json", 5), train_on_prompt=True), tokenizer)
    assert all(r.labels == r.input_ids for r in data.train + data.val)


def test_build_with_separate_validation_file(tmp_path, tokenizer):
    config = config_for(alpaca_file(tmp_path / "train.json", 12),
                        val_path=str(alpaca_file(tmp_path / "val.json", 4, answer="Rome.")))
    data = build_training_data(config, tokenizer)
    assert (len(data.train), len(data.val)) == (12, 4)
    assert all(e.messages[-1]["content"] == "Rome." for e in data.val_examples)


def test_build_drops_examples_truncation_leaves_nothing_to_learn(tmp_path, tokenizer):
    path = tmp_path / "d.json"
    rows = [{"instruction": "Hi", "output": "Hello."}] * 5 + [{"instruction": "word " * 200, "output": "Yes."}]
    path.write_text(json.dumps(rows), encoding="utf-8")
    data = build_training_data(config_for(path, max_length=64, val_fraction=0.0), tokenizer)
    assert len(data.train) == 5
    assert [(r.row, r.reason) for r in data.report.rejected] == [(6, NOTHING_LEFT)]
    assert any("nothing left to learn after truncation" in w for w in data.warnings)
    path.write_text(json.dumps(rows[-1:]), encoding="utf-8")
    with pytest.raises(DataError, match="no usable training examples at max_length 64"):
        build_training_data(config_for(path, max_length=64), tokenizer)


def test_build_warns_about_truncated_examples(tmp_path, tokenizer):
    path = alpaca_file(tmp_path / "d.json", 4, answer="The capital of France is Paris. " * 20)
    data = build_training_data(config_for(path, max_length=64, val_fraction=0.0), tokenizer)
    assert all(r.truncated and len(r.input_ids) == 64 for r in data.train)
    assert any("4 examples are longer than max_length (64 tokens)" in w for w in data.warnings)


def test_mix_in_goes_to_train_only(tmp_path, tokenizer):
    mix = tmp_path / "general.jsonl"
    mix.write_text("".join(json.dumps({"text": f"General text number {i}."}) + "\n" for i in range(50)),
                   encoding="utf-8")
    config = config_for(alpaca_file(tmp_path / "d.json", 20), mix_path=str(mix), mix_ratio=0.5)
    data = build_training_data(config, tokenizer)
    assert data.mixed_in == 18 and len(data.train) == 36 and len(data.val) == 2
    assert all(e.text is None for e in data.val_examples)
    mixed = data.train[-18:]
    assert all(r.labels == r.input_ids for r in mixed)  # plain text: every token learned


def test_mix_in_smaller_than_asked_uses_all_and_says_so(tmp_path, tokenizer):
    mix = tmp_path / "general.jsonl"
    mix.write_text(json.dumps({"text": "Only one."}) + "\n", encoding="utf-8")
    data = build_training_data(config_for(alpaca_file(tmp_path / "d.json", 10), mix_path=str(mix),
                                          mix_ratio=0.5), tokenizer)
    assert data.mixed_in == 1 and any("fewer than the 9" in w for w in data.warnings)


def test_base_model_with_chat_data_warns(tmp_path, tiny_base_model_dir):
    data = build_training_data(config_for(alpaca_file(tmp_path / "d.json", 5)), load_tokenizer(tiny_base_model_dir))
    assert any("base model without a chat template" in w for w in data.warnings)


def test_rows_the_template_refuses_are_skipped_with_the_reason(tmp_path, tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                               "{{ raise_exception('System role not supported') }}{% endif %}"
                               "{{ m['role'] + ': ' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    path = tmp_path / "d.json"
    rows = [{"instruction": "Hi", "output": "Hello."}] * 3 + [{"instruction": "Hi", "output": "Yo.",
                                                              "system": "Be cool."}]
    path.write_text(json.dumps(rows), encoding="utf-8")
    data = build_training_data(config_for(path, val_fraction=0.0), tokenizer)
    assert len(data.train) == 3
    assert [r.row for r in data.report.rejected] == [4]
    assert "System role not supported" in data.report.rejected[0].reason
