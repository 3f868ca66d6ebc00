"""General ability before and after fine-tuning, on a recognised benchmark: did the model forget?

The measure of forgetting in the literature (e.g. Biderman et al. 2024, "LoRA Learns Less and
Forgets Less") is the change in accuracy on standard multiple-choice benchmarks scored by
log-likelihood. Here: the built-in benchmark (engine.evaluate.benchmark), each question asked in the
run's chat layout (question in the user turn, each choice as the assistant's answer, through
engine.templates.prompt_ids), each choice scored by engine.evaluate.choice_scoring, the most likely
choice taken as the model's answer. A tuned model that now answers everything with one string finds
every real answer unlikely, and its accuracy falls.

The verdict compares tuned with base on the same questions (engine.evaluate.intervals):
"forgot" only when the paired difference is below zero beyond its 95% interval, "improved" when
above, else "no measurable change".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from engine.evaluate.benchmark import Benchmark, BenchmarkItem
from engine.evaluate.choice_scoring import ChoiceQuestion, score_questions
from engine.evaluate.intervals import PairedDifference, paired_difference, wilson_interval

FORGOT, IMPROVED, UNCHANGED = "forgot", "improved", "no measurable change"

ADVICE = (
    "Lower the learning rate (training.lr), e.g. halve it.",
    "Train for fewer epochs (training.epochs), or keep early stopping on.",
    "Use a smaller LoRA rank (method.lora_r), or LoRA instead of full fine-tuning.",
    "Mix general-purpose data back in (data.mix_path with data.mix_ratio around 0.1 to 0.3).",
)


def choice_questions(items: Sequence[BenchmarkItem], tokenizer) -> list[ChoiceQuestion]:
    """Token ids of each item in the chat layout: the question as the user's turn, each choice as the answer."""
    from engine.templates import prompt_ids

    questions = []
    for item in items:
        prompt = prompt_ids([{"role": "user", "content": item.question}], tokenizer)
        choices = tuple(tuple(tokenizer(choice, add_special_tokens=False)["input_ids"]) for choice in item.choices)
        questions.append(ChoiceQuestion(tuple(prompt), choices))
    return questions


def picked(item: BenchmarkItem, scores: Sequence[float], normalise: str) -> int:
    """The model's answer: the most likely choice, per character where the task's convention says so."""
    if normalise == "chars":
        values = [score / max(1, len(choice)) for score, choice in zip(scores, item.choices)]
    else:
        values = list(scores)
    return max(range(len(values)), key=values.__getitem__)


def score_items(model, tokenizer, benchmark: Benchmark, *, autocast_dtype: Any = None,
                on_done: Optional[Callable[[int], None]] = None, stop: Any = None) -> list[Optional[list[float]]]:
    """Every choice's log-likelihood for every item of `benchmark` (None where `stop` came first)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    return score_questions(model, choice_questions(benchmark.items, tokenizer), pad_id=pad,
                           autocast_dtype=autocast_dtype, on_done=on_done, stop=stop)


def right_answers(benchmark: Benchmark, scores: Sequence[Sequence[float]]) -> list[bool]:
    """Whether the model's answer is the right one, item by item."""
    normalise = {t.id: t.normalise for t in benchmark.tasks}
    return [picked(item, s, normalise[item.task]) == item.answer for item, s in zip(benchmark.items, scores)]


def accuracy(right: Sequence[bool]) -> dict[str, Any]:
    """{"accuracy", "right", "total", "ci": [low, high]} with the Wilson interval."""
    total, count = len(right), sum(1 for r in right if r)
    low, high = wilson_interval(count, total)
    return {"accuracy": round(count / total, 4) if total else None, "right": count, "total": total,
            "ci": [round(low, 4), round(high, 4)]}


def _difference(diff: PairedDifference) -> dict[str, Any]:
    return {"value": round(diff.value, 4), "ci": [round(diff.low, 4), round(diff.high, 4)],
            "gained": diff.gained, "lost": diff.lost}


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


@dataclass
class Comparison:
    """Base and tuned judged on the same benchmark items."""

    benchmark: Benchmark
    base: list = field(default_factory=list)  # bool per item
    tuned: list = field(default_factory=list)

    def per_task(self) -> list[dict[str, Any]]:
        rows = []
        for task in self.benchmark.tasks:
            index = [n for n, item in enumerate(self.benchmark.items) if item.task == task.id]
            if not index:
                continue
            base = [self.base[n] for n in index]
            tuned = [self.tuned[n] for n in index]
            diff = paired_difference(base, tuned)
            rows.append({"task": task.id, "title": task.title, "kind": task.kind, "items": len(index),
                         "chance": round(self.benchmark.chance(task.id), 4), "base": accuracy(base),
                         "tuned": accuracy(tuned), "difference": _difference(diff), "fell": diff.below_zero})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The `general_ability` block of `tunesmith-cli eval --json`."""
        overall = paired_difference(self.base, self.tuned)
        base, tuned = accuracy(self.base), accuracy(self.tuned)
        per_task = self.per_task()
        verdict = FORGOT if overall.below_zero else IMPROVED if overall.above_zero else UNCHANGED
        fell = [row for row in per_task if row["fell"]]
        if verdict == FORGOT and not fell:  # no single task is beyond noise on its own: name the largest drops
            fell = sorted((r for r in per_task if r["difference"]["value"] < 0), key=lambda r: r["difference"]["value"])
        kept = None
        if base["accuracy"]:
            kept = round(min(1.0, (tuned["accuracy"] or 0.0) / base["accuracy"]), 4)
        return {"benchmark": self.benchmark.label, "version": self.benchmark.version,
                "digest": self.benchmark.digest, "size": self.benchmark.size, "items": len(self.benchmark.items),
                "chance": round(self.benchmark.chance(), 4), "base": base, "tuned": tuned,
                "difference": _difference(overall), "per_task": per_task, "verdict": verdict,
                "tasks_fell": [row["task"] for row in fell], "kept": kept,
                "summary": summary_line(verdict, base, tuned, overall, fell, len(self.benchmark.items)),
                "headline": headline(verdict, fell),
                "advice": list(ADVICE) if verdict == FORGOT else [],
                "method": "Each choice scored by its log-likelihood as the assistant's answer in the run's chat "
                          "layout (per character where the task's convention says so); 95% Wilson intervals; "
                          "the difference is paired (same questions), with a seeded bootstrap interval."}


def headline(verdict: str, fell: list) -> str:
    """The verdict in a few words, for places with little room (the window's side panel)."""
    if verdict == FORGOT:
        tasks = ", ".join(row["title"].split(":")[0] for row in fell[:3])
        return "Forgot: general ability fell beyond noise" + (f" (most on {tasks})." if tasks else ".")
    if verdict == IMPROVED:
        return "Improved: general ability rose beyond noise."
    return "No measurable change in general ability."


def summary_line(verdict: str, base: dict, tuned: dict, diff: PairedDifference, fell: list, items: int) -> str:
    """The verdict in plain words, with the numbers that justify it."""
    numbers = (f"base {100 * base['accuracy']:.1f}% -> tuned {100 * tuned['accuracy']:.1f}% right on {items} "
               f"benchmark questions; difference {_points(diff.value)} points "
               f"(95% interval {_points(diff.low)} to {_points(diff.high)})")
    if verdict == FORGOT:
        tasks = ", ".join(f"{row['title']} ({_points(row['difference']['value'])})" for row in fell[:4])
        return (f"Forgot: the tuned model lost general ability, more than chance explains ({numbers}). "
                + (f"It fell on: {tasks}." if tasks else ""))
    if verdict == IMPROVED:
        return f"Improved: the tuned model does better on general questions than the base ({numbers})."
    return (f"No measurable change in general ability ({numbers}): the interval includes zero, so any change is "
            "within what chance explains.")


def run_precision(run, device) -> str:
    """The number format the run trained in on this hardware ("bf16", "fp16" or "fp32"): scoring uses the same."""
    from engine.train.hardware import choose

    config = run.config()
    return choose(config.training.precision if config else "auto", device).precision


def measure(loaded, benchmark: Benchmark, *, precision: Optional[str] = None, use_cache: bool = True,
            on_item: Optional[Callable[[], None]] = None, stop: Any = None) -> Optional[Comparison]:
    """Base and tuned answers of a loaded run (engine.evaluate.loading) on `benchmark`; None when stopped.

    The base side comes from the score cache (engine.evaluate.score_cache) where it can: only the
    questions it does not hold yet are scored. `on_item()` is called once per item scored or reused.
    """
    from engine.evaluate import score_cache
    from engine.train.hardware import DTYPES

    precision = precision or run_precision(loaded.run, loaded.device)
    autocast = None if precision == "fp32" else DTYPES[precision]

    def done(count: int) -> None:
        for _ in range(count if on_item else 0):
            on_item()

    key = score_cache.cache_key(loaded.run.base_model_path, loaded.tokenizer, benchmark, precision,
                                loaded.device.type)
    cached = score_cache.load_scores(key) if use_cache else {}
    missing = [item for item in benchmark.items if item.key not in cached]
    done(len(benchmark.items) - len(missing))
    sides: dict[str, list] = {}
    if missing:
        subset = Benchmark(benchmark.name, benchmark.version, benchmark.digest, benchmark.tasks, tuple(missing))
        with loaded.side("base") as model:
            fresh = score_items(model, loaded.tokenizer, subset, autocast_dtype=autocast, on_done=done, stop=stop)
        if any(s is None for s in fresh):
            return None
        new = {item.key: scores for item, scores in zip(missing, fresh)}
        if use_cache:
            score_cache.save_scores(key, new)
        cached = {**cached, **new}
    sides["base"] = [cached[item.key] for item in benchmark.items]
    with loaded.side("tuned") as model:
        tuned = score_items(model, loaded.tokenizer, benchmark, autocast_dtype=autocast, on_done=done, stop=stop)
    if any(s is None for s in tuned):
        return None
    return Comparison(benchmark, right_answers(benchmark, sides["base"]), right_answers(benchmark, tuned))
