"""The live forgetting curve: general knowledge, scored at every validation while the model trains.

A fixed slice of the general-ability benchmark (engine.evaluate.benchmark, size "live": the first
few questions of every task) is scored exactly as the evaluation scores it, in the run's chat
layout and number format. The untuned model is scored once at the start; each later score is
compared with it on the same questions (a paired 95% interval), so a drop beyond noise can raise
the forgetting alert while training is still running.

Why questions rather than the likelihood of a neutral text: the slice measures the same thing as
the evaluation's verdict (answers, in the chat layout), so the curve and the verdict agree, and
"general knowledge 60% of 28 questions" is something a person can read. Its cost and sensitivity
against the neutral text's are measured in BENCHMARKS.md.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Optional

from engine.events import GeneralMetric


class GeneralCurve:
    """Scores the live slice for a model in training; `base(model)` first, then `measure(model, step)`."""

    def __init__(self, tokenizer, autocast_dtype: Any = None, benchmark=None):
        from engine.evaluate.benchmark import load_benchmark
        from engine.evaluate.general_ability import choice_questions

        self.suite = (benchmark or load_benchmark()).sized("live")
        self.questions = choice_questions(self.suite.items, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.autocast_dtype = autocast_dtype
        self.base_right: Optional[list] = None
        self.by_step: dict[int, float] = {}

    def _right(self, model) -> list:
        from engine.evaluate.choice_scoring import score_questions
        from engine.evaluate.general_ability import right_answers

        scores = score_questions(model, self.questions, pad_id=self.pad_id, autocast_dtype=self.autocast_dtype)
        return right_answers(self.suite, scores)

    def base(self, model, *, fresh: bool) -> Optional[GeneralMetric]:
        """Score the untuned model: with the adapter switched off where there is one, or the model itself
        when training has not changed it yet (`fresh`). Returns the step-0 point when it is drawn."""
        disable = getattr(model, "disable_adapter", None)
        if disable is None and not fresh:
            return None  # full fine-tuning resumed: the base weights are gone, so no baseline to compare with
        started = time.perf_counter()
        with (disable() if disable is not None else contextlib.nullcontext()):
            self.base_right = self._right(model)
        accuracy = sum(self.base_right) / len(self.base_right)
        if not fresh:
            return None
        self.by_step[0] = accuracy
        return GeneralMetric(step=0, accuracy=accuracy, right=sum(self.base_right), total=len(self.base_right),
                             base_accuracy=accuracy, low=0.0, high=0.0, seconds=time.perf_counter() - started)

    def measure(self, model, step: int) -> GeneralMetric:
        """The slice scored by the model as it is now, compared with the base on the same questions."""
        from engine.evaluate.intervals import paired_difference

        started = time.perf_counter()
        right = self._right(model)
        accuracy = sum(right) / len(right)
        self.by_step[step] = accuracy
        base_accuracy = low = high = None
        if self.base_right is not None:
            diff = paired_difference(self.base_right, right)
            base_accuracy, low, high = sum(self.base_right) / len(self.base_right), diff.low, diff.high
        return GeneralMetric(step=step, accuracy=accuracy, right=sum(right), total=len(right),
                             base_accuracy=base_accuracy, low=low, high=high, seconds=time.perf_counter() - started)
