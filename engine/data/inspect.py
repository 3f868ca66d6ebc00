"""The whole-file report: layout, counts, rejected rows with reasons, plain-words warnings.

No model is needed: this runs before anything heavy is loaded, so a file with no usable row fails
in a second, with a summary of why.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from engine.data import io
from engine.data.completion import Proposal, propose_separator
from engine.data.errors import DataError
from engine.data.formats import Example, Rejection, RowProblem, detect_format, normalise, parse_mapping

SMALL_DATASET = 500  # below this, overfitting is the expected failure (see the seeds' failure modes)


@dataclass
class DatasetReport:
    """What `inspect_file` found. `examples` are the usable rows, in file order."""

    file: str
    format: str
    container: str
    rows_total: int
    columns: list
    mapping: dict
    examples: list = field(default_factory=list, repr=False)
    rejected: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    # Plain text only: the separator between given and written part that most rows share, if any.
    completion_separator: Optional[Proposal] = None

    @property
    def rows_valid(self) -> int:
        return len(self.examples)

    @property
    def reason_counts(self) -> dict:
        """{reason: count}, most frequent first."""
        return dict(Counter(r.reason for r in self.rejected).most_common())

    def reject_many(self, problems: list) -> None:
        """Move usable examples to the rejected list: [(row, reason)], found later (e.g. when rendering)."""
        if not problems:
            return
        rows = {row for row, _ in problems}
        self.examples = [e for e in self.examples if e.row not in rows]
        self.rejected.extend(Rejection(row, reason) for row, reason in problems)
        self.rejected.sort(key=lambda r: r.row)

    def to_dict(self) -> dict:
        return {"file": self.file, "format": self.format, "container": self.container,
                "rows_total": self.rows_total, "rows_valid": self.rows_valid, "columns": list(self.columns),
                "mapping": dict(self.mapping), "rejected": [r.to_dict() for r in self.rejected],
                "reason_counts": self.reason_counts, "warnings": list(self.warnings),
                "completion_separator": self.completion_separator.to_dict() if self.completion_separator else None}


def inspect_file(path: Union[str, Path], *, format: str = "auto", mapping=None) -> DatasetReport:
    """Read, detect and validate every row of a data file.

    format: 'auto' or one of engine.data.formats.FORMATS. mapping: {column: role} or a list of
    'COLUMN=ROLE'. Raises DataError when the file cannot be read, its columns are not recognised,
    or no row is usable.
    """
    path = Path(path).expanduser()
    mapping = parse_mapping(mapping)
    table = io.read_table(path)
    if not table.records:
        reasons = "; ".join(sorted({reason for _, reason in table.unreadable}))
        raise DataError(f"no usable rows: all {len(table.unreadable)} rows are unreadable ({reasons})", file=path,
                        hint="Each row must be a complete example on its own line.")
    try:
        data_format, roles = detect_format(table.columns, mapping, format or "auto")
    except DataError as exc:
        raise exc.with_file(path) from None
    report = DatasetReport(file=str(path), format=data_format, container=table.container,
                           rows_total=len(table.records) + len(table.unreadable), columns=list(table.columns),
                           mapping=mapping, warnings=list(table.warnings))
    report.rejected.extend(Rejection(row, reason) for row, reason in table.unreadable)
    for row, record in table.numbered():
        try:
            report.examples.append(normalise(record, row, data_format, roles))
        except RowProblem as problem:
            report.rejected.append(Rejection(row, problem.reason, problem.field))
    report.rejected.sort(key=lambda r: r.row)
    if not report.examples:
        raise DataError(f"no usable rows: all {report.rows_total} rows were rejected ({_summary(report)})",
                        file=path, hint="Fix the rows, or choose the format/--map that matches the file.")
    report.warnings.extend(dataset_warnings(report))
    if data_format == "text":
        report.completion_separator = propose_separator([example.text for example in report.examples])
    return report


def _summary(report: DatasetReport) -> str:
    return "; ".join(f"{reason}: {count}" for reason, count in report.reason_counts.items())


def dataset_warnings(report: DatasetReport) -> list[str]:
    """Plain-words warnings about the data as a whole."""
    warnings = []
    if report.rejected:
        warnings.append(f"{len(report.rejected)} of {report.rows_total} rows cannot be used and will be "
                        f"skipped ({_summary(report)}).")
    if report.rows_valid < SMALL_DATASET:
        warnings.append(f"Only {_count(report.rows_valid, 'usable example')}. With fewer than {SMALL_DATASET}, "
                        "the model easily memorises them instead of learning the task (overfitting): monitor the "
                        "validation loss and stop early when it starts to rise; keep epochs low.")
    if report.format == "preference":
        from engine.data.preference import pair_warnings

        warnings.extend(pair_warnings(report.examples))
    duplicates = _duplicate_count(report.examples)
    if duplicates:
        warnings.append(f"Exact copies of earlier examples: {duplicates}. Copies are learned more strongly; the split "
                        "keeps each copy with its twin, so none is trained on and then tested.")
    return warnings


def _duplicate_count(examples: list[Example]) -> int:
    seen, copies = set(), 0
    for example in examples:
        key = example.content_key()
        if key in seen:
            copies += 1
        seen.add(key)
    return copies


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
