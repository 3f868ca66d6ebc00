"""Held-out examples as questions with a known answer: the prompt messages and the reference reply.

A conversation's last assistant message is the reference; everything before it is the prompt.
Plain-text examples have no question/answer split, so they count for validation loss only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

from engine.evaluate.runfolder import EvaluationError, RunFolder, open_run


@dataclass(frozen=True)
class HeldOutExample:
    """One held-out example: `messages` to send (ending with the user's turn) and the `reference` answer."""

    row: Optional[int]
    messages: list = field(default_factory=list)
    reference: str = ""

    @property
    def prompt_text(self) -> str:
        """The last user message: what a person would read as "the question"."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "messages": list(self.messages), "reference": self.reference}


def split_example(example: dict[str, Any]) -> Optional[HeldOutExample]:
    """The prompt and reference of an `Example.to_dict()`; None for plain text or a conversation without an answer."""
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
    found = (split_example(e) for e in run.heldout().rows)
    return [e for e in found if e is not None]


def held_out_example(run_dir, index: Optional[int] = None, seed: Optional[int] = None) -> HeldOutExample:
    """"Try a held-out example": one held-out example's prompt messages and reference answer.

    `index` picks a given one (wrapping around); otherwise one is drawn at random (`seed` repeats a draw).
    """
    run = run_dir if isinstance(run_dir, RunFolder) else open_run(run_dir)
    examples = held_out_examples(run)
    if not examples:
        raise EvaluationError(f"{run.path}: the run has no held-out question-and-answer examples (test.jsonl and "
                              "val.jsonl are missing, empty or plain text). Set data.test_fraction above 0 and train "
                              "again.")
    if index is None:
        return random.Random(seed).choice(examples)
    return examples[index % len(examples)]
