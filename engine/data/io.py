"""Reading data files into plain records (dicts), whatever the container.

JSON arrays, JSONL, CSV, TSV, Parquet and folders written by `datasets.save_to_disk`. The container
is recognised by content first (a '.jsonl' file holding a JSON array is read as the array, with a
warning), the extension only breaks ties. Every failure is a DataError that names the file and,
where it helps, the line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from engine.data.errors import DataError

# A single JSONL/CSV line beyond this is not a training example but a broken file; reading stops
# there instead of pulling the whole line into memory.
MAX_LINE_BYTES = 16 * 2**20
MAX_JSON_ARRAY_BYTES = 512 * 2**20
PROSE_SUFFIXES = (".txt", ".md")
SNIFF_BYTES = 64 * 1024
EXTRA_CELLS = "__extra_cells__"  # key for CSV cells beyond the header; formats rejects such rows
PARQUET_MAGIC = b"PAR1"
BOMS = {b"\xef\xbb\xbf": "utf-8", b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16"}
EXTENSION_CONTAINERS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
                        ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Table:
    """The records of one file, in file order, with the columns seen and anything worth telling."""

    records: list
    columns: list
    container: str  # json | jsonl | csv | tsv | parquet | dataset
    warnings: list = field(default_factory=list)
    # Rows that could not even be read (a 20 MB line): (row, reason).
    unreadable: list = field(default_factory=list)
    # The 1-based row number of each record; empty means 1..len(records).
    row_numbers: list = field(default_factory=list)

    def numbered(self):
        """(row number, record) pairs."""
        return zip(self.row_numbers or range(1, len(self.records) + 1), self.records)


def read_table(path: str | Path) -> Table:
    """Read a data file or saved dataset folder into records; raise DataError on anything unreadable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("no such file or folder", file=path, hint="Check the path.")
    if path.is_dir():
        return _read_dataset_folder(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError("the file is empty", file=path, hint="Choose a file that holds training examples.")
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(PARQUET_MAGIC):
        table = _read_parquet(path)
    else:
        table = _read_text_file(path, head)
    expected = EXTENSION_CONTAINERS.get(path.suffix.lower())
    if expected and expected != table.container and {expected, table.container} != {"csv", "tsv"}:
        table.warnings.append(f"{path.name} is named like {expected.upper()} but holds {_describe(table.container)}; "
                              f"it was read as {_describe(table.container)}.")
    if not table.records and not table.unreadable:
        raise DataError(f"the file holds no rows ({_describe(table.container)} with nothing in it)", file=path,
                        hint="Choose a file that holds training examples.")
    return table


def _describe(container: str) -> str:
    return {"json": "a JSON array", "jsonl": "JSON Lines (one object per line)", "csv": "CSV", "tsv": "TSV",
            "parquet": "Parquet", "dataset": "a saved dataset"}.get(container, container)


def _encoding(path: Path, head: bytes) -> str:
    """UTF-8 (a UTF-8 BOM is accepted); other encodings and binary files get a clear refusal."""
    for bom, name in BOMS.items():
        if head.startswith(bom):
            if name == "utf-8":
                return "utf-8-sig"
            raise DataError(f"the file is {name.upper()} text", file=path,
                            hint="Save it as UTF-8 (in most editors: Save As, encoding UTF-8).")
    if b"\x00" in head:
        raise DataError("this is a binary file, not a data file", file=path,
                        hint="Choose JSON, JSONL, CSV, TSV or Parquet data, or a folder saved with datasets.")
    return "utf-8"


def _first_char(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return chr(text[0]) if text else ""


def _read_text_file(path: Path, head: bytes) -> Table:
    encoding = _encoding(path, head)
    first = _first_char(head)
    if not first:
        raise DataError("the file holds only blank space", file=path,
                        hint="Choose a file that holds training examples.")
    if first == "[":
        return _read_json_array(path, encoding)
    if first == "{":
        return _read_jsonl(path, encoding)
    if path.suffix.lower() in PROSE_SUFFIXES:
        raise DataError("plain text files are not read directly: Tunesmith cannot tell where one example "
                        "ends and the next begins", file=path,
                        hint='Put each text on its own JSONL line as {"text": "..."}; that trains on plain text.')
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
    if delimiter is None:
        first_line = head.split(b"\n", 1)[0]
        delimiter = "\t" if b"\t" in first_line and b"," not in first_line else ","
    return _read_delimited(path, encoding, delimiter)


def _decode_error(path: Path, exc: UnicodeDecodeError, line: Optional[int] = None) -> DataError:
    where = f"line {line}" if line else f"byte {exc.start}"
    return DataError(f"{where} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", file=path,
                     hint="Save the file as UTF-8 (in most editors: Save As, encoding UTF-8).")


def _read_json_array(path: Path, encoding: str) -> Table:
    size = path.stat().st_size
    if size > MAX_JSON_ARRAY_BYTES:
        raise DataError(f"this JSON array is {size / 2**20:,.0f} MB; a JSON array is read whole, which takes "
                        "several times its size in memory", file=path,
                        hint="Save it as JSON Lines (one example per line), which is read row by row.")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _decode_error(path, exc, line) from None
    del raw  # keep only one copy of a large file in memory
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _looks_like_jsonl_of_arrays(text):
            raise DataError("each line holds a separate JSON array; expected one JSON array or one JSON "
                            "object per line", file=path, hint="Write one object per line (JSONL).") from None
        raise DataError(f"not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})", file=path,
                        hint="Fix the file (a missing comma or quote is the usual cause).") from None
    if not isinstance(data, list):
        raise DataError("expected a JSON array of examples", file=path)
    records = [_as_record(item, index + 1, path) for index, item in enumerate(data)]
    return Table(records=records, columns=_columns(records), container="json")


def _looks_like_jsonl_of_arrays(text: str) -> bool:
    lines = [line for line in text.splitlines()[:3] if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith("[") for line in lines)


def _as_record(item, row: int, path: Path) -> dict:
    if isinstance(item, dict):
        return item
    if isinstance(item, str):  # a list of strings is plain text, one example each
        return {"text": item}
    kind = type(item).__name__.replace("NoneType", "null")
    raise DataError(f"is a {kind}, expected an object with fields (like {{\"instruction\": ..., "
                    f"\"output\": ...}})", file=path, row=row)


def _iter_lines(path: Path) -> Iterator[tuple[int, Optional[bytes]]]:
    """(line number, bytes) for each line; None for a line longer than MAX_LINE_BYTES (skipped, not kept)."""
    with path.open("rb") as handle:
        number = 0
        while True:
            chunk = handle.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            number += 1
            if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                del chunk  # skip the rest of this line in small pieces, holding none of it
                while True:
                    rest = handle.readline(2**20)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield number, None
                continue
            yield number, chunk


def _read_jsonl(path: Path, encoding: str) -> Table:
    records, unreadable, row_numbers = [], [], []
    for number, chunk in _iter_lines(path):
        if chunk is None:
            unreadable.append((len(records) + len(unreadable) + 1,
                               f"too long: a line over {MAX_LINE_BYTES // 2**20} MB"))
            continue
        try:
            line = chunk.decode(encoding if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise _decode_error(path, exc, number) from None
        if not line.strip():
            continue
        try:
            item = json.loads(line.rstrip("\r\n"))  # so an error's column is on this line
        except json.JSONDecodeError as exc:
            if number == 1 and line.strip() == "{":
                raise DataError("holds one JSON object spread over many lines, not JSON Lines", file=path,
                                hint="Use a JSON array [ {...}, {...} ] or one object per line.") from None
            raise DataError(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})", file=path,
                            hint="Fix or remove that line; JSONL needs one complete object per line.") from None
        if isinstance(item, list):
            raise DataError(f"line {number} holds a JSON array; JSON Lines needs one object per line",
                            file=path, hint="Write one {...} object per line.")
        row = len(records) + len(unreadable) + 1
        records.append(_as_record(item, row, path))
        row_numbers.append(row)
    return Table(records=records, columns=_columns(records), container="jsonl", unreadable=unreadable,
                 row_numbers=row_numbers)


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    """Decoded lines, each at most MAX_LINE_BYTES; a longer line stops reading with a DataError."""
    for number, chunk in _iter_lines(path):
        if chunk is None:
            raise DataError(f"line {number} is over {MAX_LINE_BYTES // 2**20} MB long; this is not a table of "
                            "examples", file=path, hint="Check that this is the right file.")
        try:
            yield chunk.decode(encoding if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise _decode_error(path, exc, number) from None


def _read_delimited(path: Path, encoding: str, delimiter: str) -> Table:
    container = "tsv" if delimiter == "\t" else "csv"
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.reader(_text_lines(path, encoding), delimiter=delimiter)
    try:
        header = next(reader, None)
        columns = [name.strip() for name in header or []]
        if not any(columns):
            raise DataError(f"the {container.upper()} file has no header row", file=path,
                            hint="The first line must name the columns, e.g. instruction,output.")
        records = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            record = dict(zip(columns, cells))
            if len(cells) > len(columns):  # kept visible as a problem with the row, not silently dropped
                record[EXTRA_CELLS] = cells[len(columns):]
            records.append(record)
    except csv.Error as exc:
        raise DataError(f"line {reader.line_num}: the {container.upper()} cannot be read ({exc})", file=path,
                        hint="Check the quoting on that line.") from None
    return Table(records=records, columns=columns, container=container)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises many types for damaged files; all mean the same to the user
        raise DataError(f"the Parquet file cannot be read ({exc})", file=path,
                        hint="Re-export the data; the file may be damaged or incomplete.") from None
    return Table(records=records, columns=_columns(records), container="parquet")


def _read_dataset_folder(path: Path) -> Table:
    try:
        from datasets import DatasetDict, load_from_disk

        loaded = load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError and more for foreign folders
        raise DataError("this folder is not a dataset saved with datasets.save_to_disk "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})", file=path,
                        hint="Choose a data file, or a folder written by save_to_disk.") from None
    warnings = []
    if isinstance(loaded, DatasetDict):
        if not loaded:
            raise DataError("the saved dataset has no splits", file=path)
        split = "train" if "train" in loaded else next(iter(loaded))
        if len(loaded) > 1:
            warnings.append(f"The saved dataset has splits {', '.join(loaded)}; using '{split}'.")
        loaded = loaded[split]
    records = loaded.to_list()
    return Table(records=records, columns=list(loaded.column_names), container="dataset", warnings=warnings)


def _columns(records: list, scan: int = 1000) -> list:
    """Column names in order of first appearance, from the first `scan` records."""
    seen: dict = {}
    for record in records[:scan]:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def write_jsonl(records, path: str | Path) -> None:
    """Write dicts as JSON Lines (UTF-8)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
