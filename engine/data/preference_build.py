"""Preference pairs as training sees them: both answers rendered after the same prompt.

Each side of a pair is rendered with the chat template exactly as a supervised example would be,
then only the final answer keeps its labels: earlier assistant turns of a multi-turn prompt belong
to the prompt, and the preference is about the last answer alone. The prompt tokens are masked,
so the log-probability of a side is the sum over its answer tokens (and end-of-turn marker).
"""
from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass

from engine.data.build import TrainingData, render_all, split_parts
from engine.data.errors import DataError
from engine.data.inspect import inspect_file
from engine.data.preference import PreferencePair
from engine.templates import IGNORE_INDEX, Rendered, format_mismatch_warning, render

SIDES = ("chosen", "rejected")
# A pair longer than max_length keeps at least this share of the room for its answers: the preference
# lives in the answers, so a long prompt gives up its middle before the answers are cut.
ANSWER_SHARE = 0.5
# Of a cut prompt, this share of what is kept is its beginning (system message, start of the question).
PROMPT_HEAD_SHARE = 0.25
CUT_MARKER = " [... {tokens} tokens of the prompt cut ...] "
NOT_PREFERENCE_HINT = ("Preference tuning (dpo, orpo) needs pairs: a prompt with a chosen and a rejected answer "
                       "(columns chosen and rejected, and prompt, instruction or conversations). For data with one "
                       "answer per prompt, choose the sft objective.")


@dataclass
class RenderedPair:
    """Both sides of one pair as token ids and labels (IGNORE_INDEX outside the final answer)."""

    chosen: Rendered
    rejected: Rendered
    row: int = 0

    @property
    def rejection(self):
        """Why this pair cannot be trained on, or None."""
        for side in SIDES:
            if getattr(self, side).rejection:
                return f"too long: nothing left of the {side} answer after truncation"
        if self.chosen.input_ids == self.rejected.input_ids:
            return "too long: chosen and rejected are the same within max_length"
        return None

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated

    def answer_tokens(self, side: str) -> int:
        """Tokens of that side's answer that count (the first position predicts nothing, so is skipped)."""
        return getattr(self, side).trained_tokens


def final_answer_only(rendered: Rendered) -> Rendered:
    """Mask every label before the last run of learned tokens: the final answer and its end marker."""
    labels = list(rendered.labels)
    end = len(labels)
    while end > 0 and labels[end - 1] == IGNORE_INDEX:
        end -= 1
    start = end
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    labels[:start] = [IGNORE_INDEX] * start
    rendered.labels = labels
    return rendered


def render_pair(pair, tokenizer, *, max_length: int) -> RenderedPair:
    """Render a PreferencePair's two sides with the training template; check `.rejection` before use.

    A pair longer than `max_length` is cut so that its answers keep at least ANSWER_SHARE of the room:
    the middle of a long prompt goes first (its beginning and its end, nearest the answers, stay), then
    the ends of the answers. Cutting only at the end, as supervised examples are, would leave nothing
    of the answers after a long prompt, and the pair would be lost.
    """
    full = {side: final_answer_only(render(pair.side(side), tokenizer, max_length=sys.maxsize)) for side in SIDES}
    prompt_length = _answer_start(full["chosen"])
    if (_answer_start(full["rejected"]) != prompt_length
            or full["chosen"].input_ids[:prompt_length] != full["rejected"].input_ids[:prompt_length]):
        # The template renders the shared prompt differently on each side: cut at the end, as for supervised data.
        sides = {side: _cut(rendered, 0, 0, max_length) for side, rendered in full.items()}
        return RenderedPair(chosen=sides["chosen"], rejected=sides["rejected"], row=pair.row)
    longest_answer = max(len(rendered.input_ids) for rendered in full.values()) - prompt_length
    answer_room = min(longest_answer, max(max_length - prompt_length, int(max_length * ANSWER_SHARE)))
    prompt_room = max_length - answer_room
    sides = {side: _cut(rendered, prompt_length, prompt_room, max_length) for side, rendered in full.items()}
    return RenderedPair(chosen=sides["chosen"], rejected=sides["rejected"], row=pair.row)


def _answer_start(rendered: Rendered) -> int:
    """Index of the first learned token (the final answer's start); the length when nothing is learned."""
    return next((i for i, label in enumerate(rendered.labels) if label != IGNORE_INDEX), len(rendered.labels))


def _cut(rendered: Rendered, prompt_length: int, prompt_room: int, max_length: int) -> Rendered:
    """`rendered` in at most `max_length` tokens: the prompt's middle removed down to `prompt_room` tokens
    (when it is longer), then the end cut off. The text shows where the prompt was cut."""
    ids, labels, ends, text = rendered.input_ids, rendered.labels, rendered.token_ends, rendered.text
    if len(ids) <= max_length and prompt_length <= prompt_room:
        return rendered
    if prompt_length > prompt_room:
        head = int(prompt_room * PROMPT_HEAD_SHARE)
        tail_start = prompt_length - (prompt_room - head)
        head_end = ends[head - 1] if head else 0
        gap_end = ends[tail_start - 1]
        marker = CUT_MARKER.format(tokens=tail_start - head)
        shift = head_end + len(marker) - gap_end
        text = text[:head_end] + marker + text[gap_end:]
        ids = ids[:head] + ids[tail_start:]
        labels = labels[:head] + labels[tail_start:]
        ends = array("i", list(ends[:head]) + [end + shift for end in ends[tail_start:]])
    return Rendered(input_ids=ids[:max_length], labels=labels[:max_length], truncated=True,
                    full_length=rendered.full_length, row=rendered.row, text=text, token_ends=ends[:max_length],
                    problem=rendered.problem)


def render_pairs(pairs, tokenizer, max_length: int) -> tuple[list, list, int]:
    """([(pair, rendered)], [(row, reason)] for pairs that cannot be used, number truncated)."""
    return render_all(pairs, tokenizer, {"max_length": max_length}, render_one=render_pair)


def build_preference_data(config, tokenizer) -> TrainingData:
    """Read, validate, split and render the preference pairs of `config` (dpo and orpo objectives).

    Like engine.data.build.build_training_data (the same train / validation / test split), but `train`
    and `val` hold RenderedPairs and `val_examples` / `test_examples` the held-out PreferencePairs (written
    to val.jsonl and test.jsonl for the evaluation).
    """
    data = config.data
    report = inspect_file(data.path, format=data.format, mapping=data.mapping)
    _require_pairs(report, data.path)
    warnings = list(report.warnings)
    mismatch = format_mismatch_warning(tokenizer, report.format)
    if mismatch:
        warnings.append(mismatch)
    split = split_parts(data, report, warnings)
    for path, part in ((data.val_path, split.val), (data.test_path, split.test)):
        if path and any(not isinstance(example, PreferencePair) for example in part):
            _require_pairs(inspect_file(path, format=data.format, mapping=data.mapping), path)
    train, dropped, truncated = render_pairs(split.train, tokenizer, data.max_length)
    held_out = {}
    for part, pairs, from_file in (("validation", split.val, data.val_path), ("test", split.test, data.test_path)):
        kept, part_dropped, part_truncated = render_pairs(pairs, tokenizer, data.max_length)
        held_out[part] = kept
        truncated += part_truncated
        if not from_file:
            dropped += part_dropped
        elif part_dropped:
            warnings.append(f"{part.capitalize()} file: {len(part_dropped)} pairs are skipped ({part_dropped[0][1]}).")
    report.reject_many(dropped)
    if not train:
        raise DataError(f"no usable preference pairs at max_length {data.max_length}", file=data.path,
                        hint="Raise data.max_length or shorten the prompts.")
    if truncated:
        warnings.append(f"{truncated} pairs are longer than max_length ({data.max_length} tokens) and are cut: the "
                        "middle of a long prompt first, then the ends of the answers, so the preference is learned "
                        "from the beginnings of those answers. Raise max_length if the endings decide which answer "
                        "is better.")
    if dropped:
        reasons = "; ".join(sorted({reason for _, reason in dropped}))
        warnings.append(f"{len(dropped)} pairs are skipped when laid out for training: {reasons}.")
    if data.mix_path and data.mix_ratio > 0:
        warnings.append("The general data to mix in is not used in preference tuning (it has no pairs); the "
                        "reference model already keeps the tuned model close to the base.")
    return TrainingData(train=[rendered for _, rendered in train],
                        val=[rendered for _, rendered in held_out["validation"]],
                        val_examples=[pair for pair, _ in held_out["validation"]], report=report, warnings=warnings,
                        test_examples=[pair for pair, _ in held_out["test"]])


def _require_pairs(report, path) -> None:
    if report.format != "preference":
        raise DataError(f"this file is '{report.format}' data, not preference pairs", file=path,
                        hint=NOT_PREFERENCE_HINT)


def answer_token_counts(pairs, tokenizer) -> list[tuple[int, int]]:
    """(chosen, rejected) answer lengths in tokens for each pair, without the template: for the length chart."""
    core = tokenizer.backend_tokenizer  # the Rust tokenizer: one batch call, no Python per token
    texts = [text for pair in pairs for text in (pair.chosen, pair.rejected)]
    counts = [len(encoding.ids) for encoding in core.encode_batch(texts, add_special_tokens=False)]
    return list(zip(counts[0::2], counts[1::2]))


def length_difference(counts: list[tuple[int, int]]) -> dict:
    """Across pairs: how often the chosen answer is the longer one, and the median chosen - rejected in tokens."""
    if not counts:
        return {"pairs": 0, "chosen_longer_share": None, "median_difference": None}
    differences = sorted(c - r for c, r in counts)
    middle = len(differences) // 2
    median = differences[middle] if len(differences) % 2 else (differences[middle - 1] + differences[middle]) / 2
    return {"pairs": len(counts), "chosen_longer_share": round(sum(d > 0 for d in differences) / len(counts), 4),
            "median_difference": median}
