"""Reading every container, and every kind of bad file: a clear DataError, never a traceback or a hang."""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from engine.data.errors import DataError
from engine.data.inspect import inspect_file
from engine.data.io import MAX_LINE_BYTES, read_table

ROWS = [{"instruction": "Say hi", "output": "hi"}, {"instruction": "Say bye", "output": "bye"}]


def jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def test_csv_and_tsv(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('instruction,output\n"Say hi, please",hi\n\nSay bye,"bye\nnow"\n', encoding="utf-8")
    report = inspect_file(csv_path)
    assert (report.format, report.container, report.rows_valid) == ("alpaca", "csv", 2)
    assert report.examples[0].messages[0]["content"] == "Say hi, please"
    assert report.examples[1].messages[1]["content"] == "bye\nnow"
    tsv_path = tmp_path / "d.tsv"
    tsv_path.write_text("prompt\tcompletion\n2+2?\t4\n", encoding="utf-8")
    report = inspect_file(tsv_path)
    assert (report.format, report.container, report.rows_valid) == ("prompt_completion", "tsv", 1)


def test_csv_row_with_too_many_cells_is_rejected(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("instruction,output\nSay hi,hi\nSay, bye,bye\n", encoding="utf-8")
    report = inspect_file(path)
    assert [(r.row, r.reason) for r in report.rejected] == [(2, "more cells than columns (check the quoting)")]


def test_parquet_and_saved_dataset_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    report = inspect_file(tmp_path / "d.parquet")
    assert (report.format, report.container, report.rows_valid) == ("alpaca", "parquet", 2)
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(
        str(tmp_path / "saved"))
    report = inspect_file(tmp_path / "saved")
    assert (report.format, report.container, report.rows_valid) == ("alpaca", "dataset", 2)
    assert any("using 'train'" in w for w in report.warnings)


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="not a dataset saved with datasets.save_to_disk"):
        read_table(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("name", ["d.json", "d.jsonl", "d.csv"])
def test_utf8_bom_is_accepted(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".json"):
        body = json.dumps(ROWS).encode()
    elif name.endswith(".jsonl"):
        body = jsonl_bytes(ROWS)
    else:
        body = b"instruction,output\nSay hi,hi\nSay bye,bye\n"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    report = inspect_file(path)
    assert report.rows_valid == 2 and report.columns[0] == "instruction"


def test_utf16_file_is_explained(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(json.dumps(ROWS).encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16.*Save it as UTF-8"):
        read_table(path)


@pytest.mark.parametrize("name,body,line", [
    ("d.jsonl", jsonl_bytes(ROWS) + b'{"instruction": "caf\xe9", "output": "x"}\n', 3),
    ("d.json", b'[\n{"instruction": "a", "output": "b"},\n{"instruction": "\xff", "output": "c"}\n]', 3),
    ("d.csv", b"instruction,output\nSay hi,hi\nSay \xff,bye\n", 3),
])
def test_non_utf8_bytes_name_the_line(tmp_path, name, body, line):
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(DataError, match=rf"line {line} is not UTF-8 text.*Save the file as UTF-8"):
        read_table(path)


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(jsonl_bytes(ROWS[:1]) + b'{"instruction": "a", "output": }\n' + jsonl_bytes(ROWS[1:]))
    with pytest.raises(DataError, match=r"d.jsonl: line 2 is not valid JSON"):
        read_table(path)


def test_json_array_in_a_jsonl_file_is_read_and_said(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    report = inspect_file(path)
    assert report.rows_valid == 2 and report.container == "json"
    assert any("named like JSONL but holds a JSON array" in w for w in report.warnings)


def test_jsonl_in_a_json_file_is_read_and_said(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(jsonl_bytes(ROWS))
    report = inspect_file(path)
    assert report.rows_valid == 2 and report.container == "jsonl"
    assert any("named like JSON but holds JSON Lines" in w for w in report.warnings)


def test_one_pretty_printed_object_is_not_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0], indent=2), encoding="utf-8")
    with pytest.raises(DataError, match="one JSON object spread over many lines"):
        read_table(path)


def test_jsonl_lines_holding_arrays(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('[{"text": "a"}]\n[{"text": "b"}]\n', encoding="utf-8")
    with pytest.raises(DataError, match="each line holds a separate JSON array"):
        read_table(path)


@pytest.mark.parametrize("body", [b"", b"  \n\n "])
def test_empty_file(tmp_path, body):
    path = tmp_path / "d.jsonl"
    path.write_bytes(body)
    with pytest.raises(DataError, match="empty|only blank space"):
        read_table(path)


def test_empty_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="holds no rows"):
        read_table(path)


def test_binary_file(tmp_path):
    path = tmp_path / "weights.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="binary file"):
        read_table(path)


def test_rows_that_are_not_objects(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="row 1: is a int, expected an object"):
        read_table(path)
    path.write_text('["first text", "second text"]', encoding="utf-8")
    report = inspect_file(path)
    assert report.format == "text" and report.rows_valid == 2


def _write_huge_line(path, prefix: bytes, size: int, suffix: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(prefix)
        block = b"a" * 2**20
        for _ in range(size // len(block)):
            handle.write(block)
        handle.write(suffix)


def test_100_mb_jsonl_line_is_skipped_quickly_with_little_memory(tmp_path):
    path = tmp_path / "d.jsonl"
    _write_huge_line(path, jsonl_bytes(ROWS[:1]) + b'{"text": "', 100 * 2**20, b'"}\n' + jsonl_bytes(ROWS[1:]))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = inspect_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 3 * MAX_LINE_BYTES  # bounded by the line cap, not by the 100 MB line
    assert report.rows_total == 3 and report.rows_valid == 2
    assert [(r.row, r.reason) for r in report.rejected] == [(2, "too long: a line over 16 MB")]


def test_100_mb_single_line_csv_fails_fast(tmp_path):
    path = tmp_path / "d.csv"
    _write_huge_line(path, b"", 100 * 2**20, b"\n")
    started = time.perf_counter()
    with pytest.raises(DataError, match="line 1 is over 16 MB"):
        inspect_file(path)
    assert time.perf_counter() - started < 10


def test_huge_example_inside_a_json_array_is_rejected_not_tokenized(tmp_path):
    path = tmp_path / "d.json"
    _write_huge_line(path, b'[{"text": "short"}, {"text": "', 3 * 2**20, b'"}]')
    report = inspect_file(path)
    assert [(r.row, r.reason) for r in report.rejected] == [(2, "too long: more than 2,000,000 characters")]


def test_oversized_json_array_suggests_jsonl(tmp_path, monkeypatch):
    from engine.data import io

    monkeypatch.setattr(io, "MAX_JSON_ARRAY_BYTES", 100)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS * 5), encoding="utf-8")
    with pytest.raises(DataError, match="JSON array is 0 MB.*Save it as JSON Lines"):
        read_table(path)


def test_plain_text_file_explains_the_jsonl_way(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Once upon a time, there was a fox.\nIt was quick.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r'plain text files are not read directly.*\{"text": "..."\}'):
        read_table(path)
