"""The Dataset view's work, as plain functions that run on a pool thread (never on the Qt thread).

They call the engine's data and template functions; loading a tokenizer imports transformers, which
is why none of this may run on the Qt thread. Tokenizers are cached per (model folder, template),
so clicking through examples only renders.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from gui.widgets.background import ENGINE_IMPORT_LOCK

# One tokenizer per pool thread: a fast tokenizer must not encode in two threads at once (it changes
# its own settings per call, and concurrent calls were seen to hang), and loading one is cheap.
_per_thread = threading.local()
# Datasets larger than this are measured on an evenly spread sample of this many examples.
MEASURE_SAMPLE = 20000
# Measured in chunks, so that opening another file stops the work on the old one within a moment.
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


def tokenizer_for(model_dir: str, template: str):
    """The model's tokenizer with its chat template (cached; loading takes a second or two)."""
    cache = _per_thread.__dict__.setdefault("tokenizers", {})
    key = (str(model_dir), template)
    if key not in cache:
        with ENGINE_IMPORT_LOCK:  # the first load imports transformers (and torch)
            from engine.templates import load_tokenizer

            cache[key] = load_tokenizer(model_dir, template=template)
    return cache[key]


def render_preview(example, model_dir: str, template: str, max_length: int, train_on_prompt: bool,
                   completion_separator: str = "") -> Preview:
    """Render one example exactly as training will see it."""
    from engine.templates import render

    tokenizer = tokenizer_for(model_dir, template)
    rendered = render(example, tokenizer, max_length=max_length, train_on_prompt=train_on_prompt,
                      completion_separator=completion_separator)
    return Preview(row=example.row, pieces=rendered.pieces(), tokens=len(rendered.input_ids),
                   truncated=bool(rendered.truncated), problem=rendered.problem)


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


def _prompt_and_answer(rendered) -> tuple[str, str, int]:
    """(text before the answer, the answer's learned text, tokens before the answer) of a rendered side."""
    pieces = rendered.pieces()
    first = next((i for i, piece in enumerate(pieces) if piece["trained"]), len(pieces))
    answer = "".join(piece["text"] for piece in pieces[first:] if piece["trained"])
    return "".join(piece["text"] for piece in pieces[:first]), answer, first


def render_pair_preview(pair, model_dir: str, template: str, max_length: int) -> PairPreview:
    """Render both sides of a preference pair exactly as preference training will see them."""
    from engine.data.preference_build import render_pair

    rendered = render_pair(pair, tokenizer_for(model_dir, template), max_length=max_length)
    prompt, chosen, prompt_tokens = _prompt_and_answer(rendered.chosen)
    _, rejected, _ = _prompt_and_answer(rendered.rejected)
    return PairPreview(row=pair.row, prompt=prompt, chosen=chosen, rejected=rejected, prompt_tokens=prompt_tokens,
                       chosen_tokens=rendered.chosen.trained_tokens, rejected_tokens=rendered.rejected.trained_tokens,
                       truncated=rendered.truncated, question=pair.prompt[-1]["content"])


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
    from engine.data.stats import token_lengths as measure
    from engine.templates import format_mismatch_warning

    tokenizer = tokenizer_for(model_dir, template)
    step = max(1, -(-len(examples) // limit))
    sample = examples[::step]
    lengths: list[int] = []
    pairs: list = []
    for start in range(0, len(sample), MEASURE_CHUNK):
        if not still_wanted():
            return None
        chunk = sample[start:start + MEASURE_CHUNK]
        lengths.extend(measure(chunk, tokenizer))
        if data_format == "preference":
            from engine.data.preference_build import answer_token_counts

            pairs.extend(answer_token_counts(chunk, tokenizer))
    return Lengths(lengths, format_mismatch_warning(tokenizer, data_format), total=len(examples), pairs=pairs)
