"""build_training_data: rendering, the three parts, validation and test files, truncation, mix-in.

The split itself is tested in test_data_split.py."""
from __future__ import annotations

import json

import pytest

from engine.config import RunConfig
from engine.data.build import build_training_data
from engine.data.errors import DataError
from engine.data.formats import Example
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


def test_build_renders_and_splits(tmp_path, tokenizer):
    config = config_for(alpaca_file(tmp_path / "d.json", 30), max_length=128)
    data = build_training_data(config, tokenizer)
    # 30 examples: each held-out part gets the minimum of 5 rather than 10% (3).
    assert (len(data.train), len(data.val), len(data.val_examples), len(data.test_examples)) == (20, 5, 5, 5)
    assert [r.row for r in data.val] == [e.row for e in data.val_examples]
    trained = {r.row for r in data.train}
    assert not trained & {e.row for e in data.test_examples} and not trained & {e.row for e in data.val_examples}
    first = data.train[0]
    assert IGNORE_INDEX in first.labels and any(label != IGNORE_INDEX for label in first.labels)
    assert data.report.format == "alpaca" and data.report.rows_valid == 30
    assert any("Only 30 usable examples" in w for w in data.warnings)
    # The same config gives the same split.
    again = build_training_data(config, tokenizer)
    assert [e.row for e in again.val_examples] == [e.row for e in data.val_examples]
    assert [e.row for e in again.test_examples] == [e.row for e in data.test_examples]


def test_build_train_on_prompt(tmp_path, tokenizer):
    data = build_training_data(config_for(alpaca_file(tmp_path / "d.json", 5), train_on_prompt=True), tokenizer)
    assert all(r.labels == r.input_ids for r in data.train + data.val)


def test_build_with_separate_validation_file(tmp_path, tokenizer):
    config = config_for(alpaca_file(tmp_path / "train.json", 12),
                        val_path=str(alpaca_file(tmp_path / "val.json", 4, answer="Rome.")))
    data = build_training_data(config, tokenizer)
    # The test part still comes out of the training file (the validation file chose the best step).
    assert (len(data.train), len(data.val), len(data.test_examples)) == (8, 4, 4)
    assert all(e.messages[-1]["content"] == "Rome." for e in data.val_examples)


def test_build_drops_examples_truncation_leaves_nothing_to_learn(tmp_path, tokenizer):
    path = tmp_path / "d.json"
    rows = [{"instruction": "Hi", "output": "Hello."}] * 5 + [{"instruction": "word " * 200, "output": "Yes."}]
    path.write_text(json.dumps(rows), encoding="utf-8")
    data = build_training_data(config_for(path, max_length=64, val_fraction=0.0, test_fraction=0.0), tokenizer)
    assert len(data.train) == 5
    assert [(r.row, r.reason) for r in data.report.rejected] == [(6, NOTHING_LEFT)]
    assert any("nothing left to learn after truncation" in w for w in data.warnings)
    path.write_text(json.dumps(rows[-1:]), encoding="utf-8")
    with pytest.raises(DataError, match="no usable training examples at max_length 64"):
        build_training_data(config_for(path, max_length=64), tokenizer)


def test_build_warns_about_truncated_examples(tmp_path, tokenizer):
    path = alpaca_file(tmp_path / "d.json", 4, answer="The capital of France is Paris. " * 20)
    data = build_training_data(config_for(path, max_length=64, val_fraction=0.0, test_fraction=0.0), tokenizer)
    assert all(r.truncated and len(r.input_ids) == 64 for r in data.train)
    assert any("4 examples are longer than max_length (64 tokens)" in w for w in data.warnings)


def test_mix_in_goes_to_train_only(tmp_path, tokenizer):
    mix = tmp_path / "general.jsonl"
    mix.write_text("".join(json.dumps({"text": f"General text number {i}."}) + "\n" for i in range(50)),
                   encoding="utf-8")
    config = config_for(alpaca_file(tmp_path / "d.json", 20), mix_path=str(mix), mix_ratio=0.5)
    data = build_training_data(config, tokenizer)
    assert (len(data.val), len(data.test_examples)) == (4, 4)
    assert data.mixed_in == 12 and len(data.train) == 24
    assert all(e.text is None for e in data.val_examples)
    mixed = data.train[-12:]
    assert all(r.labels == r.input_ids for r in mixed)  # plain text: every token learned


def test_mix_in_smaller_than_asked_uses_all_and_says_so(tmp_path, tokenizer):
    mix = tmp_path / "general.jsonl"
    mix.write_text(json.dumps({"text": "Only one."}) + "\n", encoding="utf-8")
    data = build_training_data(config_for(alpaca_file(tmp_path / "d.json", 10), mix_path=str(mix),
                                          mix_ratio=0.5), tokenizer)
    assert data.mixed_in == 1 and any("fewer than the 6" in w for w in data.warnings)


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
    data = build_training_data(config_for(path, val_fraction=0.0, test_fraction=0.0), tokenizer)
    assert len(data.train) == 3
    assert [r.row for r in data.report.rejected] == [4]
    assert "System role not supported" in data.report.rejected[0].reason


def test_mix_in_rows_the_template_refuses_are_skipped_and_counted_not_fatal(tmp_path, tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                               "{{ raise_exception('System role not supported') }}{% endif %}"
                               "{{ m['role'] + ': ' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    mix = tmp_path / "general.jsonl"
    rows = [{"instruction": f"General question {i}", "output": "An answer."} for i in range(6)]
    rows += [{"instruction": "Hi", "output": "Yo.", "system": "Be cool."}] * 4
    mix.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = config_for(alpaca_file(tmp_path / "d.json", 10), mix_path=str(mix), mix_ratio=0.5, val_fraction=0.0,
                        test_fraction=0.0)
    data = build_training_data(config, tokenizer)
    assert data.mixed_in == 6 and len(data.train) == 16
    note = next(w for w in data.warnings if w.startswith("Mix-in data"))
    assert "4 of the 10 chosen examples are skipped" in note and "System role not supported" in note


def test_counts_in_messages_agree_with_their_noun():
    from engine.data.split import validation_warnings
    from engine.events import Started
    from gui.training_curves import describe_event

    assert validation_warnings(1, 10)[0].startswith("Only 1 validation example: ")
    assert validation_warnings(3, 30)[0].startswith("Only 3 validation examples: ")
    assert "(there is only 1 example)" in validation_warnings(0, 1)[0]
    started = Started(run_dir="r", method="lora", device="CPU", trainable_params=1, total_params=10,
                      train_examples=1, val_examples=1, test_examples=1, total_steps=1)
    line = describe_event(started)
    assert "1 training example, 1 validation example and 1 test example (test:" in line and "1 step." in line
