"""Held-out examples as questions with a known answer: the prompt and the reference reply.

A conversation's last assistant message is the reference; everything before it is the prompt.
Completion-style plain text (a run with `data.completion_separator`) is split at its separator: the
text up to it is the prompt, the rest the reference. Other plain text has no question/answer
split, so it counts for the held-out loss only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

from engine.data.completion import propose_separator, split_text
from engine.evaluate.runfolder import EvaluationError, RunFolder, open_run


@dataclass(frozen=True)
class HeldOutExample:
    """One held-out example and its `reference` answer: `messages` to send (ending with the user's turn),
    or for completion-style text `given`, the plain text the answer continues."""

    row: Optional[int]
    messages: list = field(default_factory=list)
    reference: str = ""
    given: Optional[str] = None

    @property
    def prompt_text(self) -> str:
        """The last user message (or the given text): what a person would read as "the question"."""
        if self.given is not None:
            return self.given
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "messages": list(self.messages), "reference": self.reference, "given": self.given}


def split_example(example: dict[str, Any], completion_separator: str = "") -> Optional[HeldOutExample]:
    """The prompt and reference of an `Example.to_dict()`; None for a conversation without an answer, and
    for plain text unless `completion_separator` splits it into a given part and a non-empty answer."""
    text = example.get("text")
    if isinstance(text, str):
        parts = split_text(text, completion_separator) if completion_separator else None
        if parts is None or not parts[1].strip():
            return None
        return HeldOutExample(row=example.get("row"), given=parts[0], reference=parts[1].strip())
    messages = example.get("messages")
    if not isinstance(messages, list):
        return None
    last_answer = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
                      default=None)
    if last_answer is None or last_answer == 0:
        return None
    prompt = [{"role": m["role"], "content": str(m.get("content", ""))} for m in messages[:last_answer]]
    return HeldOutExample(row=example.get("row"), messages=prompt,
                          reference=str(messages[last_answer].get("content", "")))


def held_out_examples(run: RunFolder) -> list[HeldOutExample]:
    """Every held-out example of the run (test rows; validation rows for older runs) that has a
    question and an answer, in file order."""
    separator = run.completion_separator()
    found = (split_example(e, separator) for e in run.heldout().rows)
    return [e for e in found if e is not None]


NO_SEPARATOR_NOTE = ("Only loss and perplexity are measured: the held-out examples are plain text without a "
                     "completion separator, so nothing marks where the question ends and the answer begins.{hint} "
                     "Set data.completion_separator and train again to score the answers by exact match and chrF.")
ONE_LINE_NOTE = "Every reference answer is one line, so each generated answer is scored on its first line."


def answer_scoring(run: RunFolder, rows: list, questions: list[HeldOutExample]) -> dict[str, Any]:
    """How the held-out answers are scored, for results.json: {"style": "chat" | "completion" | None,
    "separator", "first_line_only", "note"}; `note` says in plain words what is scored, or why nothing is."""
    completion = [q for q in questions if q.given is not None]
    if completion:
        one_line = all("\n" not in q.reference for q in completion)
        return {"style": "completion", "separator": run.completion_separator(), "first_line_only": one_line,
                "note": ONE_LINE_NOTE if one_line else None}
    texts = [row["text"] for row in rows if isinstance(row.get("text"), str)]
    if texts and not questions:
        proposal = propose_separator(texts)
        hint = f" In these rows {proposal.why}." if proposal else ""
        return {"style": None, "separator": None, "first_line_only": False, "note": NO_SEPARATOR_NOTE.format(hint=hint)}
    return {"style": "chat" if questions else None, "separator": None, "first_line_only": False, "note": None}


def question_prompt_ids(question: HeldOutExample, tokenizer) -> list[int]:
    """What generation starts from: the chat template's prompt, or the completion text up to its separator."""
    from engine.templates import completion_prompt_ids, prompt_ids

    if question.given is not None:
        return completion_prompt_ids(question.given, tokenizer)
    return prompt_ids(question.messages, tokenizer)


def first_line(answer: str) -> str:
    """The first non-empty line of a generated answer (a completion model keeps writing past its answer)."""
    return answer.strip().split("\n", 1)[0].strip()


def held_out_example(run_dir, index: Optional[int] = None, seed: Optional[int] = None) -> HeldOutExample:
    """"Try a held-out example": one held-out example's prompt messages and reference answer.

    `index` picks a given one (wrapping around); otherwise one is drawn at random (`seed` repeats a draw).
    """
    run = run_dir if isinstance(run_dir, RunFolder) else open_run(run_dir)
    examples = [e for e in held_out_examples(run) if e.messages]  # chat needs a conversation to continue
    if not examples:
        raise EvaluationError(f"{run.path}: the run has no held-out question-and-answer examples (test.jsonl and "
                              "val.jsonl are missing, empty or plain text). Set data.test_fraction above 0 and train "
                              "again.")
    if index is None:
        return random.Random(seed).choice(examples)
    return examples[index % len(examples)]
