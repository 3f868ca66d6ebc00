"""One vocabulary of events, shared by the training worker, the CLI and the window.

Every event is a small frozen dataclass that pickles (to cross a process boundary) and turns into
a flat JSON object with a "type" key (for metrics.jsonl and `--events jsonl`). A sink is any
callable that takes an event.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Event:
    """Base class: `time` is when the event was made (seconds since the epoch)."""

    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"] = type(self).__name__
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class Started(Event):
    """Training is about to start: what is being trained and on what."""

    run_dir: str
    method: str
    device: str
    trainable_params: int
    total_params: int
    train_examples: int
    val_examples: int
    total_steps: int
    test_examples: int = 0  # kept aside for the before/after evaluation; 0 in runs made before the test split

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / max(1, self.total_params)


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should read, in plain words (a fallback, a warning, a hint)."""

    message: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class Planned(Event):
    """How the run will train (engine.train.plan) and how long it should take on this machine."""

    explanation: str  # one or two plain sentences
    settings: dict  # the resolved values: batch_size, steps, lr, warmup_steps, eval_every, keep_general, ...
    estimate_s: Optional[float] = None  # predicted seconds from now to the end; None when not measurable
    plan: str = "auto"  # "auto" | "custom"


@dataclass(frozen=True)
class Progress(Event):
    step: int
    total_steps: int
    epoch: float
    elapsed_s: float
    eta_s: Optional[float]


@dataclass(frozen=True)
class FirstLoss(Event):
    """The loss of a run's first forward pass, before any weight has changed: where the curve starts.

    A CPU step can take half a minute; this number comes after one pass of one row, so the user
    sees within seconds that training is under way and from where the loss has to come down.
    """

    step: int  # the optimizer step it precedes (0 for a new run, the checkpoint's step on a resume)
    loss: float


@dataclass(frozen=True)
class TrainMetric(Event):
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float


@dataclass(frozen=True)
class EvalMetric(Event):
    """Validation loss at `step`; best_step/best_val_loss describe the best seen so far."""

    step: int
    val_loss: float
    best_step: int
    best_val_loss: float


@dataclass(frozen=True)
class GeneralMetric(Event):
    """General knowledge at `step`: a fixed slice of the general-ability benchmark, scored at each validation.

    `base_accuracy` is the untuned model's score on the same questions (None when unknown); `low` and
    `high` bound the paired difference accuracy - base_accuracy (95%), so `forgetting` is True when the
    whole interval lies below zero: a drop beyond noise.
    """

    step: int
    accuracy: float
    right: int
    total: int
    base_accuracy: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    seconds: float = 0.0

    @property
    def forgetting(self) -> bool:
        return self.high is not None and self.high < 0

    def describe(self) -> str:
        """One log line, the same in the window and the CLI."""
        if self.step == 0:
            return (f"General knowledge before training: {100 * self.accuracy:.0f}% of {self.total} benchmark "
                    f"questions ({self.seconds:.1f} s per check).")
        change = ""
        if self.base_accuracy is not None and self.low is not None and self.high is not None:
            change = (f", {100 * (self.accuracy - self.base_accuracy):+.0f} points since the start "
                      f"(95% interval {100 * self.low:+.0f} to {100 * self.high:+.0f})")
        return f"Step {self.step}: general knowledge {100 * self.accuracy:.0f}%{change}."


@dataclass(frozen=True)
class PreferenceMetric(Event):
    """Preference tuning (dpo, orpo) at `step`, over the step's training pairs or all validation pairs.

    Rewards: DPO's implicit reward beta * (log p_policy - log p_reference) of an answer; ORPO's
    beta * the mean log-probability per token. `accuracy` is the share of pairs whose chosen answer
    has the higher reward; `preferred_length` the mean answer tokens of whichever answer wins, beside
    `chosen_length`, the mean of the chosen answers (a preferred length far above it: verbosity).
    """

    step: int
    split: str  # train | val
    pairs: int
    loss: float
    accuracy: float
    reward_margin: float  # mean reward(chosen) - reward(rejected)
    chosen_reward: float
    rejected_reward: float
    preferred_length: float
    chosen_length: float


@dataclass(frozen=True)
class CheckpointSaved(Event):
    step: int
    path: str


@dataclass(frozen=True)
class Finished(Event):
    """The run ended with a usable result. reason: completed | stopped | early_stopped."""

    run_dir: str
    output_path: str
    reason: str
    step: int
    best_step: Optional[int] = None
    best_val_loss: Optional[float] = None


@dataclass(frozen=True)
class Failed(Event):
    """The run could not go on. `reason` says what happened, `hint` what to try."""

    reason: str
    hint: str = ""
    log_tail: str = ""


@dataclass(frozen=True)
class Token(Event):
    """A piece of streamed text from the chat worker; side is "base" or "tuned"."""

    request: int
    side: str
    text: str


@dataclass(frozen=True)
class GenerationDone(Event):
    request: int
    side: str
    tokens: int
    seconds: float
    first_token_s: Optional[float] = None


Sink = Callable[[Event], None]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (Started, Notice, Planned, Progress, FirstLoss, TrainMetric, EvalMetric, GeneralMetric, PreferenceMetric,
                CheckpointSaved, Finished, Failed, Token, GenerationDone)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of Event.to_dict; unknown keys are ignored so old readers survive new fields."""
    cls = EVENT_TYPES[data["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def read_events(path, skipped: Optional[list] = None) -> list[Event]:
    """Read a metrics.jsonl file.

    A torn last line (the writer was killed mid-write) is skipped quietly. Any other line that cannot
    be read (a damaged file, an edit by hand) is skipped too, but said: logged as a warning, and its
    "line N: why" appended to `skipped` when given.
    """
    events, problems = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                events.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                if line.endswith("\n"):  # only the last line can lack its newline: the one a kill tore
                    problems.append(f"line {number}: {type(exc).__name__}: {str(exc)[:120]}")
    if problems:
        logging.getLogger(__name__).warning("%s: %d unreadable line(s) skipped (%s)", path, len(problems),
                                            "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else ""))
        if skipped is not None:
            skipped.extend(problems)
    return events
