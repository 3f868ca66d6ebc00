"""Format detection, normalisation into messages, row validation, and the real sample files."""
from __future__ import annotations

import json

import pytest

from engine.data.errors import DataError
from engine.data.formats import Example
from engine.data.inspect import inspect_file


def write_json(tmp_path, rows, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def write_jsonl(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name,expected_format,rows", [
    ("alpaca_en_demo.json", "alpaca", 999),
    ("openai_messages.json", "messages", 8),
    ("sharegpt.json", "sharegpt", 8),
    ("sharegpt_with_system.json", "sharegpt", 1),
    ("text.json", "text", 8),
])
def test_real_sample_files_are_detected(shared_data, name, expected_format, rows):
    report = inspect_file(shared_data / name)
    assert (report.format, report.rows_total, report.rows_valid) == (expected_format, rows, rows)
    assert report.rejected == []


def test_real_sharegpt_with_system_keeps_system_and_both_turns(shared_data):
    example = inspect_file(shared_data / "sharegpt_with_system.json").examples[0]
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert example.messages[0]["content"] == "You are an AI assistant."


def test_custom_columns_need_a_map_and_the_error_suggests_it(shared_data):
    path = shared_data / "instruct_response_custom_columns.json"
    with pytest.raises(DataError) as caught:
        inspect_file(path)
    message = str(caught.value)
    assert "found: instruction, response" in message and "--map response=output" in message
    report = inspect_file(path, mapping=["instruction=instruction", "response=output"])
    assert (report.format, report.rows_valid) == ("alpaca", 2)
    assert report.examples[1].messages[1]["content"].startswith("Istanbul was Constantinople")


def test_alpaca_merges_input_and_keeps_system_and_history(tmp_path):
    path = write_json(tmp_path, [{"instruction": "Translate.", "input": "bonjour", "output": "hello",
                                  "system": "You translate.", "history": [["Hi", "Hello!"]]}])
    messages = inspect_file(path).examples[0].messages
    assert messages == [{"role": "system", "content": "You translate."},
                        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                        {"role": "user", "content": "Translate.\n\nbonjour"},
                        {"role": "assistant", "content": "hello"}]


def test_prompt_completion_with_mapping(tmp_path):
    path = write_jsonl(tmp_path, [{"question": "2+2?", "answer": 4}, {"question": "3+3?", "answer": "6"}])
    report = inspect_file(path, mapping={"question": "prompt", "answer": "completion"})
    assert report.format == "prompt_completion" and report.rows_valid == 2
    assert report.examples[0].messages == [{"role": "user", "content": "2+2?"},
                                           {"role": "assistant", "content": "4"}]


def test_unrecognised_columns_suggest_a_prompt_completion_map(tmp_path):
    path = write_jsonl(tmp_path, [{"question": "2+2?", "answer": "4"}])
    with pytest.raises(DataError, match=r"found: question, answer.*--map question=prompt --map answer=completion"):
        inspect_file(path)


def test_map_to_unknown_role_or_missing_column_is_explained(tmp_path):
    path = write_jsonl(tmp_path, [{"question": "2+2?", "answer": "4"}])
    with pytest.raises(DataError, match="'reply' is not a role"):
        inspect_file(path, mapping=["question=reply"])
    with pytest.raises(DataError, match="does not have"):
        inspect_file(path, mapping=["query=prompt"])


def test_forced_format_names_the_missing_columns(tmp_path):
    path = write_jsonl(tmp_path, [{"text": "hello"}])
    with pytest.raises(DataError, match="format 'alpaca' needs column"):
        inspect_file(path, format="alpaca")


def test_openai_content_parts_are_joined_and_images_refused(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                      {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                      {"role": "assistant", "content": "A cat"}]},
    ]
    report = inspect_file(write_jsonl(tmp_path, rows))
    assert report.examples[0].messages[0]["content"] == "Hi there"
    assert [(r.row, r.reason) for r in report.rejected] == [(2, "non-text content")]


def test_every_rejection_reason_is_counted_with_its_row(tmp_path):
    good = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    rows = [
        good,
        {"conversations": [{"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Hi"}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hi?"},
                           {"from": "gpt", "value": "Yes"}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "tool", "value": "{}"}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "  "}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": {"a": 1}}]},
        {"conversations": [{"from": "human", "value": "Hi"}]},
        {"other": 1},
        good,
    ]
    report = inspect_file(write_jsonl(tmp_path, rows))
    assert report.format == "sharegpt" and report.rows_total == 9 and report.rows_valid == 2
    assert [(r.row, r.reason) for r in report.rejected] == [
        (2, "assistant speaks first"),
        (3, "odd turn order: two user turns in a row"),
        (4, "unknown role 'tool'"),
        (5, "empty answer"),
        (6, "non-text content"),
        (7, "odd turn order: ends with a user turn that has no answer"),
        (8, "missing field 'conversations'"),
    ]
    assert sum(report.reason_counts.values()) == 7
    assert any("7 of 9 rows cannot be used" in w for w in report.warnings)
    assert any("Exact copies of earlier examples: 1." in w for w in report.warnings)


def test_alpaca_rejections(tmp_path):
    rows = [{"instruction": "Say hi", "output": "hi"}, {"instruction": "Say hi", "output": ""},
            {"instruction": "", "input": "", "output": "x"}, {"instruction": "Say hi"}]
    report = inspect_file(write_json(tmp_path, rows), format="alpaca")
    assert [(r.row, r.reason, r.field) for r in report.rejected] == [
        (2, "empty answer", "output"), (3, "empty prompt", "instruction"), (4, "missing field 'output'", "output")]


def test_no_usable_row_fails_with_a_summary(tmp_path):
    path = write_json(tmp_path, [{"instruction": "a", "output": ""}, {"instruction": "b", "output": " "}])
    with pytest.raises(DataError, match=r"no usable rows: all 2 rows were rejected \(empty answer: 2\)"):
        inspect_file(path)


def test_small_dataset_warns_about_overfitting(tmp_path):
    report = inspect_file(write_json(tmp_path, [{"text": "one"}, {"text": "two"}]))
    assert any("Only 2 usable examples" in w and "stop early" in w for w in report.warnings)


def test_report_to_dict_has_the_documented_keys():
    from tests.fixtures.make_fixtures import HERE

    data = inspect_file(HERE / "sharegpt.jsonl").to_dict()
    assert {"format", "rows_total", "rows_valid", "rejected", "columns", "reason_counts", "warnings"} <= set(data)
    assert data["columns"] == ["conversations"]
    json.dumps(data)


def test_example_round_trips_through_dict():
    example = Example(row=4, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    assert Example.from_dict(example.to_dict()) == example
    assert Example.from_dict(Example(row=2, text="t").to_dict()) == Example(row=2, text="t")


@pytest.mark.parametrize("columns,suggestion", [
    ({"input": "2+2?", "output": "4"}, "--map input=instruction"),
    ({"question": "2+2?", "response": "4"}, "--map question=instruction --map response=output"),
    ({"dialogue": [{"from": "human", "value": "hi"}]}, "--map dialogue=conversations"),
])
def test_map_suggestions_for_common_column_names(tmp_path, columns, suggestion):
    with pytest.raises(DataError, match=suggestion):
        inspect_file(write_jsonl(tmp_path, [columns]))
