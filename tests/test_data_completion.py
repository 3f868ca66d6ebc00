"""Completion-style plain text: the separator, proposing one, training only on the written part."""
from __future__ import annotations

import json

import pytest

from engine.data import completion
from engine.data.formats import Example
from engine.templates import IGNORE_INDEX, load_tokenizer, render

SQL_ROW = "table: staff (name, area)\nQ: How many people work in DATA: the data team?\nA: SELECT count(*) FROM staff"


def test_separator_setting_is_written_with_escapes():
    assert completion.decode("\\n\\n") == "\n\n" and completion.decode("A:") == "A:"
    assert completion.decode("tab\\there \\\\n") == "tab\there \\n"
    for separator in ("\n\n", "A:", "a\\b\tc"):
        assert completion.decode(completion.encode(separator)) == separator


def test_a_label_separator_counts_at_the_start_of_a_line_first():
    given, written = completion.split_text(SQL_ROW, "A:")
    assert given.endswith("\nA:") and "DATA:" in given  # "DATA:" inside the question does not split
    assert written == " SELECT count(*) FROM staff"
    # On one line, the first occurrence anywhere.
    assert completion.split_text("Q: 2+2? A: 4", "A:") == ("Q: 2+2? A:", " 4")
    assert completion.split_text("Story.\n\nThe end.\n\nMore.", "\\n\\n") == ("Story.\n\n", "The end.\n\nMore.")
    assert completion.split_text("no separator here", "A:") is None


@pytest.mark.parametrize("texts,expected", [
    ([SQL_ROW.replace("staff", f"t{i}") for i in range(20)], "A:"),
    ([f"### Instruction:\nSay {i}.\n\n### Response:\n{i}" for i in range(20)], "### Response:"),
    ([f"A poem about {i}.\n\nRoses are red, {i}." for i in range(20)], "\\n\\n"),
    ([f"Just some text number {i} without parts." for i in range(20)], None),
])
def test_a_common_separator_is_proposed(texts, expected):
    proposal = completion.propose_separator(texts)
    assert (proposal.separator if proposal else None) == expected
    if proposal:
        assert proposal.rows == proposal.looked_at == 20


def test_no_proposal_when_too_few_rows_share_a_separator():
    texts = [SQL_ROW] * 8 + ["plain sentence"] * 2  # 80% < the 90% a proposal needs
    assert completion.propose_separator(texts) is None


def test_training_learns_only_the_written_part(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    example = Example(row=3, text=SQL_ROW)
    whole = render(example, tokenizer, max_length=256)
    assert all(label != IGNORE_INDEX for label in whole.labels)  # no separator: every token learned
    rendered = render(example, tokenizer, max_length=256, completion_separator="A:")
    learned = "".join(piece["text"] for piece in rendered.pieces() if piece["trained"])
    assert learned.strip() == "SELECT count(*) FROM staff" + tokenizer.eos_token
    assert render(example, tokenizer, max_length=256, completion_separator="A:", train_on_prompt=True).labels \
        == whole.labels
    missing = render(Example(row=4, text="no answer here"), tokenizer, max_length=256, completion_separator="A:")
    assert missing.rejection == completion.missing_reason("A:")


def test_inspect_proposes_the_separator_of_a_text_file(tmp_path, capsys):
    from engine.cli import main
    from engine.data.build import completion_warnings
    from engine.data.inspect import inspect_file

    path = tmp_path / "sql.jsonl"
    path.write_text("".join(json.dumps({"text": SQL_ROW.replace("staff", f"t{i}")}) + "\n" for i in range(12)))
    report = inspect_file(path)
    assert report.format == "text" and report.completion_separator.separator == "A:"
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["completion_separator"] == {
        "separator": "A:", "rows": 12, "looked_at": 12, "why": "'A:' starts the last labelled line of 12 of 12 rows"}
    assert main(["inspect", str(path)]) == 0
    assert "--set data.completion_separator='A:'" in capsys.readouterr().out
    # Training says so too, until the separator is set; a separator on chat data is pointed out.
    assert any("set data.completion_separator to 'A:'" in w for w in completion_warnings("", report))
    assert completion_warnings("A:", report) == []
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"prompt": "Hi", "completion": "Hello"}) + "\n")
    assert "applies to plain-text data only" in completion_warnings("A:", inspect_file(chat))[0]


def test_preview_shows_what_a_separator_leaves_to_learn(tmp_path, tiny_model_dir, capsys):
    from engine.cli import main

    path = tmp_path / "sql.jsonl"
    path.write_text(json.dumps({"text": SQL_ROW}) + "\n")
    assert main(["preview", str(path), "--model", str(tiny_model_dir), "--completion-separator", "A:", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    learned = "".join(piece["text"] for piece in shown["pieces"] if piece["trained"])
    assert learned.startswith(" SELECT count(*) FROM staff") and shown["rejection"] is None
