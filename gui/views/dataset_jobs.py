"""The Dataset view's work, as plain functions that run on a pool thread (never on the Qt thread).

Reading a file happens here, in the window's process (the engine's data readers need no ML library).
Anything that needs the model's tokenizer (the preview, token lengths) is asked of the engine helper
process (gui.engine_helper, jobs in engine.window_jobs), which keeps the tokenizer loaded between
requests: the window's process never imports transformers or torch. What comes back is plain data,
turned here into what the view shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from gui.engine_helper import helper

# Datasets larger than this are measured on an evenly spread sample of this many examples.
MEASURE_SAMPLE = 20000
# Measured in chunks (one helper request each), so that opening another file stops the work on the old
# one within a moment.
MEASURE_CHUNK = 512


@dataclass
class Preview:
    """One example rendered for display."""

    row: int
    pieces: list  # [{text, trained}]
    tokens: int
    truncated: bool
    problem: Optional[str] = None  # why training leaves the example out (see Rendered.problem)


@dataclass
class Inspection:
    """What reading a data file gave: a report, or the plain-words error and the file's columns."""

    report: Any = None  # engine.data.inspect.DatasetReport
    error: str = ""
    columns: list = field(default_factory=list)  # known even when the layout was not recognised


def inspect(path: str, data_format: str, mapping: Optional[dict]) -> Inspection:
    """Read and check a data file with the view's format and column mapping."""
    from engine.data.errors import DataError
    from engine.data.inspect import inspect_file
    from engine.data.io import read_table

    try:
        return Inspection(report=inspect_file(path, format=data_format, mapping=mapping or None))
    except DataError as exc:
        problem = exc
    try:
        columns = list(read_table(path).columns)
    except DataError:
        return Inspection(error=str(problem))  # the file itself cannot be read: a mapping would not help
    # The engine's hint speaks of the CLI's --map; the window's own "what to do" is the mapping control.
    without_hint = DataError(problem.message, file=problem.file, row=problem.row, field=problem.field)
    return Inspection(error=str(without_hint), columns=columns)


def raw_record(path: str, row: int) -> Optional[dict]:
    """The record at 1-based `row` of a data file as read, or None when that row could not be read."""
    from engine.data.io import read_table

    for number, record in read_table(path).numbered():
        if number == row:
            return record
    return None


def render_preview(example, model_dir: str, template: str, max_length: int, train_on_prompt: bool,
                   completion_separator: str = "") -> Preview:
    """Render one example exactly as training will see it."""
    return Preview(**helper().call("render_preview", example.to_dict(), model_dir, template, max_length,
                                   train_on_prompt, completion_separator, lane="preview"))


@dataclass
class PairPreview:
    """One preference pair rendered for display: the shared prompt and both answers, as trained."""

    row: int
    prompt: str  # the rendered prompt, template markers included
    chosen: str  # each answer with its end-of-turn marker, as learned
    rejected: str
    prompt_tokens: int
    chosen_tokens: int
    rejected_tokens: int
    truncated: bool
    question: str = ""  # the last user message, to scroll the prompt to


def render_pair_preview(pair, model_dir: str, template: str, max_length: int) -> PairPreview:
    """Render both sides of a preference pair exactly as preference training will see them."""
    return PairPreview(**helper().call("render_pair_preview", pair.to_dict(), model_dir, template, max_length,
                                       lane="preview"))


@dataclass
class Lengths:
    """Token lengths of the examples and what the tokenizer says about the data's layout."""

    lengths: list  # full length of each measured example in tokens, before cutting
    template_warning: Optional[str]
    total: int = 0  # examples in the dataset; more than len(lengths) when only a sample was measured
    pairs: list = field(default_factory=list)  # preference data: (chosen, rejected) answer tokens per measured pair


def token_lengths(examples: list, model_dir: str, template: str, data_format: str,
                  limit: int = MEASURE_SAMPLE, still_wanted: Callable[[], bool] = lambda: True) -> Optional[Lengths]:
    """The full length in tokens of each example (before any cutting), for the histogram.

    Huge datasets are measured on an evenly spread sample of `limit` examples, so the histogram
    appears in seconds rather than minutes; its summary says so. Returns None early once
    `still_wanted()` is False (the user opened another file meanwhile).
    """
    step = max(1, -(-len(examples) // limit))
    sample = examples[::step]
    lengths: list[int] = []
    pairs: list = []
    for start in range(0, len(sample), MEASURE_CHUNK):
        if not still_wanted():
            return None
        chunk = [example.to_dict() for example in sample[start:start + MEASURE_CHUNK]]
        measured = helper().call("token_lengths", chunk, model_dir, template, data_format == "preference",
                                 lane="lengths")
        lengths.extend(measured["lengths"])
        pairs.extend(tuple(counts) for counts in measured["pairs"])
    warning = helper().call("format_warning", model_dir, template, data_format, lane="lengths")
    return Lengths(lengths, warning, total=len(examples), pairs=pairs)
