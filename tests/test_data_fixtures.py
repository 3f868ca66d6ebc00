"""The project's own sample files (tests/fixtures/data): every format and layout, read and laid out for
training on a plain clone. The third-party files in ../shared/data are an extra check where present."""
from __future__ import annotations

import pytest

from engine.data.errors import DataError
from engine.data.inspect import inspect_file
from engine.templates import load_tokenizer, render
from tests.fixtures.make_fixtures import EXPECTED, HERE, SYSTEM

CONTAINERS = {"alpaca.json": "json", "sharegpt.jsonl": "jsonl", "messages.json": "json",
              "prompt_completion.csv": "csv", "custom_columns.tsv": "tsv", "text.parquet": "parquet",
              "alpaca_dataset": "dataset"}


def test_every_format_and_layout_has_a_fixture():
    from engine.config import FORMATS

    assert set(CONTAINERS.values()) == {"json", "jsonl", "csv", "tsv", "parquet", "dataset"}
    assert {layout for _, layout, _, _ in EXPECTED} == set(FORMATS) - {"auto"}


@pytest.mark.parametrize("name, layout, rows, mapping", EXPECTED, ids=[row[0] for row in EXPECTED])
def test_each_fixture_is_read_and_laid_out_for_training(name, layout, rows, mapping, tiny_model_dir):
    report = inspect_file(HERE / name, mapping=mapping)
    assert (report.format, report.rows_total, report.rows_valid, report.rejected) == (layout, rows, rows, [])
    tokenizer = load_tokenizer(tiny_model_dir)
    for example in report.examples:
        rendered = render(example, tokenizer, max_length=512)
        assert rendered.rejection is None and rendered.trained_tokens > 0


def test_what_each_layout_keeps(tiny_model_dir):
    alpaca = inspect_file(HERE / "alpaca.json").examples
    assert alpaca[0].messages[0] == {"role": "system", "content": SYSTEM}
    assert alpaca[1].messages[0]["content"].endswith("220 °C")  # the input joins the instruction
    sharegpt = inspect_file(HERE / "sharegpt.jsonl").examples[-1]
    assert [m["role"] for m in sharegpt.messages] == ["system", "user", "assistant", "user", "assistant"]
    csv_rows = inspect_file(HERE / "prompt_completion.csv").examples
    assert csv_rows[0].messages[0]["content"].startswith("List three things, separated by commas")
    assert csv_rows[1].messages[1]["content"] == "Rye, sourdough and buns today.\nBack on Monday at eight."
    assert inspect_file(HERE / "text.parquet").examples[0].text.startswith("A baker's dozen is thirteen.")


def test_unknown_columns_and_prose_files_are_refused_with_what_to_do():
    with pytest.raises(DataError, match="question, answer"):
        inspect_file(HERE / "custom_columns.tsv")
    with pytest.raises(DataError, match=r'JSONL line as \{"text": "..."\}'):
        inspect_file(HERE / "notes.txt")
