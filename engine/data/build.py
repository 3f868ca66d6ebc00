"""From a RunConfig to rendered training and validation sets.

Reads `config.data.path`, validates every row, splits off validation and test (or reads
`val_path` / `test_path`), renders with the tokenizer's template, and optionally mixes
general-purpose data into the training set only (the seeds' mitigation against catastrophic
forgetting). Test examples are rendered only to check that they fit; training never sees them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from engine.data.errors import DataError
from engine.data.inspect import DatasetReport, inspect_file
from engine.data.split import (Split, overlap_warning, split_as_configured, validation_warnings,
                               warnings_for_test_part)
from engine.templates import NOTHING_LEFT, format_mismatch_warning, render


@dataclass
class TrainingData:
    """What training needs: rendered examples, the held-out Examples (for evaluation), the report."""

    train: list  # Rendered
    val: list  # Rendered
    val_examples: list  # Example
    report: DatasetReport
    warnings: list = field(default_factory=list)
    mixed_in: int = 0  # how many of `train` came from the mix-in data
    test_examples: list = field(default_factory=list)  # Example: never trained on, for the before/after evaluation


def build_data(config, tokenizer) -> TrainingData:
    """The training data for the config's objective: pairs for dpo and orpo, examples for sft."""
    if config.training.objective != "sft":
        from engine.data.preference_build import build_preference_data  # it builds on this module

        return build_preference_data(config, tokenizer)
    return build_training_data(config, tokenizer)


def build_training_data(config, tokenizer) -> TrainingData:
    """Read, validate, split and render the data of `config` (a RunConfig) with `tokenizer`.

    The tokenizer must come from engine.templates.load_tokenizer. Raises DataError when the data
    cannot be read or nothing usable is left after rendering.
    """
    data = config.data
    report = inspect_file(data.path, format=data.format, mapping=data.mapping)
    warnings = list(report.warnings)
    mismatch = format_mismatch_warning(tokenizer, report.format)
    if mismatch:
        warnings.append(mismatch)
    warnings.extend(completion_warnings(data.completion_separator, report))
    if report.format == "preference":
        warnings.append("Preference pairs with the sft objective: the model learns to write the chosen answers and "
                        "never sees the rejected ones. Choose the dpo or orpo objective to teach the preference.")
    split = split_parts(data, report, warnings)

    render_options = {"max_length": data.max_length, "train_on_prompt": data.train_on_prompt,
                      "completion_separator": data.completion_separator if report.format == "text" else ""}
    train_pairs, dropped, truncated = render_all(split.train, tokenizer, render_options)
    held_out = {}
    for part, examples, from_file in (("validation", split.val, data.val_path), ("test", split.test, data.test_path)):
        pairs, part_dropped, part_truncated = render_all(examples, tokenizer, render_options)
        held_out[part] = pairs
        truncated += part_truncated
        if not from_file:
            dropped += part_dropped
        elif part_dropped:
            warnings.append(f"{part.capitalize()} file: {len(part_dropped)} examples are skipped "
                            f"({part_dropped[0][1]}).")
    report.reject_many(dropped)
    train = [rendered for _, rendered in train_pairs]
    if not train:
        raise DataError(f"no usable training examples at max_length {data.max_length}", file=data.path,
                        hint="Raise data.max_length or shorten the prompts.")
    if truncated:
        warnings.append(f"{truncated} examples are longer than max_length ({data.max_length} tokens) and are cut "
                        "at the end; the model never sees how they finish. Raise max_length if they matter.")
    if dropped:
        reasons = "; ".join(sorted({reason for _, reason in dropped}))
        advice = " Raise max_length to keep them." if NOTHING_LEFT in reasons else ""
        warnings.append(f"{len(dropped)} examples are skipped when laid out for training: {reasons}.{advice}")

    mixed = 0
    if data.mix_path and data.mix_ratio > 0:
        # General data is learned whole: the separator belongs to the user's own layout.
        mix_options = dict(render_options, completion_separator="")
        mixed_rendered, mix_notes = _mix_in(data, len(train), tokenizer, mix_options)
        train.extend(mixed_rendered)
        mixed = len(mixed_rendered)
        warnings.extend(mix_notes)
    return TrainingData(train=train, val=[rendered for _, rendered in held_out["validation"]],
                        val_examples=[example for example, _ in held_out["validation"]], report=report,
                        warnings=warnings, mixed_in=mixed,
                        test_examples=[example for example, _ in held_out["test"]])


def completion_warnings(separator: str, report: DatasetReport) -> list[str]:
    """Plain words about the completion separator: set where it means nothing, or missing where the data
    shows one (then the model learns the questions too, and evaluation can measure only loss)."""
    if separator and report.format != "text":
        return [f"data.completion_separator is set to '{separator}', but it applies to plain-text data only; "
                f"this file is in the {report.format} layout, which already says what is the answer. It is ignored."]
    proposal = report.completion_separator
    if report.format == "text" and not separator and proposal:
        return [f"Plain text where {proposal.why}: set data.completion_separator to '{proposal.separator}' so that "
                "the model learns only what follows it and evaluation can score its answers; without it every "
                "token is learned and evaluation measures loss only."]
    return []


def split_parts(data, report: DatasetReport, warnings: list) -> Split:
    """Train / validation / test Examples: each held-out part from its own file when one is given,
    else split off the training file; warnings about each part's size and overlap go to `warnings`."""
    split = split_as_configured(report.examples, data)
    if data.val_path:
        split.val = _read_part(data, data.val_path, "validation file", warnings)
        split.val_warnings = validation_warnings(len(split.val), len(split.val))
        warnings.extend(overlap_warning("validation file", split.val, split.train))
    if data.test_path:
        split.test = _read_part(data, data.test_path, "test file", warnings)
        split.test_warnings = warnings_for_test_part(len(split.test), len(split.test))
        warnings.extend(overlap_warning("test file", split.test, split.train + split.val))
    warnings.extend(split.warnings)
    return split


def _read_part(data, path: str, name: str, warnings: list) -> list:
    """The usable examples of a separate validation or test file, read in the training file's layout."""
    part_report = inspect_file(path, format=data.format, mapping=data.mapping)
    if part_report.rejected:
        warnings.append(f"{name.capitalize()}: {len(part_report.rejected)} rows cannot be used and are skipped.")
    return list(part_report.examples)


def render_all(examples, tokenizer, options, render_one=render) -> tuple[list, list, int]:
    """([(example, rendered)], [(row, reason)] for examples that cannot be rendered or are left with
    nothing to learn, number truncated). `render_one(example, tokenizer, **options)` renders one."""
    kept, dropped, truncated = [], [], 0
    for example in examples:
        try:
            rendered = render_one(example, tokenizer, **options)
        except DataError as exc:  # the chat template refuses this conversation: skip it, counted by reason
            dropped.append((example.row, exc.message))
            continue
        if rendered.rejection:
            dropped.append((example.row, rendered.rejection))
            continue
        truncated += rendered.truncated
        kept.append((example, rendered))
    return kept, dropped, truncated


def _mix_in(data, train_count: int, tokenizer, options) -> tuple[list, list]:
    """Rendered mix-in examples so that they make up `mix_ratio` of the training set."""
    mix_report = inspect_file(data.mix_path)
    wanted = round(train_count * data.mix_ratio / (1.0 - data.mix_ratio))
    pool = list(mix_report.examples)
    notes = []
    if wanted > len(pool):
        notes.append(f"The mix-in data has {len(pool)} usable examples, fewer than the {wanted} that "
                     f"mix_ratio {data.mix_ratio:g} asks for; all of them are used.")
        wanted = len(pool)
    chosen = random.Random(data.seed + 1).sample(pool, wanted)
    kept, dropped, _ = render_all(chosen, tokenizer, options)
    if dropped:
        # The mix-in is the user's safety net, not their task: a few rows the template cannot lay out
        # are skipped and counted, never a reason to refuse the whole run.
        reasons = "; ".join(sorted({reason for _, reason in dropped}))
        notes.append(f"Mix-in data ({data.mix_path}): {len(dropped)} of the {len(chosen)} chosen examples are "
                     f"skipped when laid out for training (rows {', '.join(str(row) for row, _ in dropped[:5])}"
                     f"{', ...' if len(dropped) > 5 else ''}): {reasons}.")
    return [rendered for _, rendered in kept], notes
