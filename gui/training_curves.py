"""The state of one training run as the window shows it, built from engine events (no Qt).

The live Training view feeds it events as they arrive; Run history feeds it the events read back
from a run's metrics.jsonl. Both then draw the same curves, progress text and overfitting alert.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from engine.events import (CheckpointSaved, EvalMetric, Event, Failed, Finished, FirstLoss, GeneralMetric, Notice,
                           Planned, PreferenceMetric, Progress, Started, TrainMetric)
from engine.train.timing import format_duration as rough_duration
from engine.words import count

OVERFITTING_MESSAGE = (
    "The model is starting to memorise the examples instead of learning from them: validation loss is "
    "rising while training loss keeps falling. Training past this point usually makes answers worse on "
    "new questions. You can press Stop now (what was learned so far is kept, and the best step is "
    "marked), or use fewer epochs or more examples next time.")

FORGETTING_MESSAGE = (
    "The model is forgetting what it knew (catastrophic forgetting): its general knowledge has fallen below "
    "where it started by more than chance explains. Stop now to keep the best step, or next time lower the "
    "learning rate, train fewer steps, or mix general data back in (Dataset: mix-in data).")

# Validation must rise this many evaluations in a row above its best before we call it overfitting:
# a single noisy bump on a small validation set is common and harmless.
RISING_EVALS = 2


def overfitting(train: list[tuple[int, float]], val: list[tuple[int, float]]) -> bool:
    """True when validation loss rose over the last RISING_EVALS evaluations while training loss fell.

    `train` and `val` are (step, loss) pairs in step order. Training loss is compared as the mean over
    each window between the evaluations, so one noisy batch does not decide it.
    """
    if len(val) < RISING_EVALS + 1:
        return False
    recent = val[-(RISING_EVALS + 1):]
    best = min(loss for _, loss in val)
    rising = all(later[1] > earlier[1] for earlier, later in zip(recent, recent[1:]))
    if not rising or recent[-1][1] <= best:
        return False
    start_step, end_step = recent[0][0], recent[-1][0]
    before = [loss for step, loss in train if step <= start_step][-max(1, len(train) // 10):]
    after = [loss for step, loss in train if start_step < step <= end_step]
    if not before or not after:
        return False
    return sum(after) / len(after) < sum(before) / len(before)


def format_duration(seconds: Optional[float]) -> str:
    """12 s, 3 min 04 s, 1 h 02 min; '?' when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class PreferenceCurves:
    """Preference tuning's curves: the training pairs' reward margin per step, and every validation."""

    train_steps: list[int] = field(default_factory=list)
    train_margins: list[float] = field(default_factory=list)
    val: list[PreferenceMetric] = field(default_factory=list)

    def apply(self, event: PreferenceMetric) -> bool:
        if event.split == "train":
            TrainingCurves._rewind(self.train_steps, self.train_margins, event.step)
            self.train_steps.append(event.step)
            self.train_margins.append(event.reward_margin)
        else:
            while self.val and self.val[-1].step >= event.step:  # a resume redoes these steps
                self.val.pop()
            self.val.append(event)
        return True

    def until(self, step: int) -> "PreferenceCurves":
        kept = [(s, m) for s, m in zip(self.train_steps, self.train_margins) if s <= step]
        return PreferenceCurves([s for s, _ in kept], [m for _, m in kept], [e for e in self.val if e.step <= step])

    def __bool__(self) -> bool:
        return bool(self.train_steps or self.val)


@dataclass
class TrainingCurves:
    """Everything the Training view draws, accumulated from events."""

    train_steps: list[int] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_step: Optional[int] = None
    best_val_loss: Optional[float] = None
    step: int = 0
    total_steps: int = 0
    eta_s: Optional[float] = None
    elapsed_s: float = 0.0
    tokens_per_s: float = 0.0
    started: Optional[Started] = None
    outcome: Optional[Event] = None
    checkpoints: list[str] = field(default_factory=list)
    general_steps: list[int] = field(default_factory=list)
    general_accuracy: list[float] = field(default_factory=list)  # 0..1, general-knowledge questions right
    last_general: Optional[GeneralMetric] = None
    preference: PreferenceCurves = field(default_factory=PreferenceCurves)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> "TrainingCurves":
        curves = cls()
        for event in events:
            curves.apply(event)
        return curves

    def apply(self, event: Event) -> bool:
        """Take one event into account; True when something drawn on the plot changed."""
        if isinstance(event, FirstLoss):  # where the curve starts, drawn at the step it precedes
            self._rewind(self.train_steps, self.train_losses, event.step)
            self.train_steps.append(event.step)
            self.train_losses.append(event.loss)
            return True
        if isinstance(event, TrainMetric):
            self._rewind(self.train_steps, self.train_losses, event.step)
            self.train_steps.append(event.step)
            self.train_losses.append(event.loss)
            self.step = max(self.step, event.step)
            self.tokens_per_s = event.tokens_per_s
            return True
        if isinstance(event, EvalMetric):
            self._rewind(self.val_steps, self.val_losses, event.step)
            self.val_steps.append(event.step)
            self.val_losses.append(event.val_loss)
            self.best_step, self.best_val_loss = event.best_step, event.best_val_loss
            return True
        if isinstance(event, GeneralMetric):
            self._rewind(self.general_steps, self.general_accuracy, event.step)
            self.general_steps.append(event.step)
            self.general_accuracy.append(event.accuracy)
            self.last_general = event
            return True
        if isinstance(event, PreferenceMetric):
            return self.preference.apply(event)
        if isinstance(event, Progress):
            self.step, self.total_steps = event.step, event.total_steps
            self.eta_s, self.elapsed_s = event.eta_s, event.elapsed_s
        elif isinstance(event, Started):
            self.started, self.total_steps = event, event.total_steps
        elif isinstance(event, Planned) and self.step == 0:
            self.eta_s = event.estimate_s  # the run's own estimate, before the first step ends
        elif isinstance(event, CheckpointSaved):
            self.checkpoints.append(event.path)
        elif isinstance(event, Finished):
            self.outcome = event
            if event.best_step is not None:
                self.best_step, self.best_val_loss = event.best_step, event.best_val_loss
                return True
        elif isinstance(event, Failed):
            self.outcome = event
        return False

    @staticmethod
    def _rewind(steps: list[int], losses: list[float], step: int) -> None:
        """A resumed run starts again from its checkpoint's step: forget the points it will redo
        (metrics.jsonl keeps both attempts, one after the other)."""
        while steps and steps[-1] >= step:
            steps.pop()
            losses.pop()

    def until(self, step: int) -> "TrainingCurves":
        """A copy holding only the points up to `step` (the curves a resume from that step continues)."""
        copy = TrainingCurves(best_step=self.best_step, best_val_loss=self.best_val_loss, total_steps=self.total_steps,
                              preference=self.preference.until(step))
        for s, loss in zip(self.train_steps, self.train_losses):
            if s <= step:
                copy.train_steps.append(s)
                copy.train_losses.append(loss)
        for s, loss in zip(self.val_steps, self.val_losses):
            if s <= step:
                copy.val_steps.append(s)
                copy.val_losses.append(loss)
        for s, accuracy in zip(self.general_steps, self.general_accuracy):
            if s <= step:
                copy.general_steps.append(s)
                copy.general_accuracy.append(accuracy)
        if copy.val_losses:
            best = min(range(len(copy.val_losses)), key=copy.val_losses.__getitem__)
            copy.best_step, copy.best_val_loss = copy.val_steps[best], copy.val_losses[best]
        copy.step = copy.train_steps[-1] if copy.train_steps else 0
        return copy

    @property
    def overfitting(self) -> bool:
        return overfitting(list(zip(self.train_steps, self.train_losses)),
                           list(zip(self.val_steps, self.val_losses)))

    @property
    def forgetting(self) -> bool:
        """The latest general-knowledge score is below the untuned model's beyond its 95% interval."""
        return self.last_general is not None and self.last_general.forgetting

    @property
    def fraction_done(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def progress_text(self) -> str:
        """'Step 40 of 120 · 1 min 10 s left · 2,340 tokens/s'."""
        if not self.total_steps:
            return "Preparing…"
        parts = [f"Step {self.step} of {self.total_steps}"]
        if self.eta_s is not None and self.step < self.total_steps:
            parts.append(f"{format_duration(self.eta_s)} left")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:,.0f} tokens/s")
        return " · ".join(parts)


def describe_event(event: Event) -> Optional[str]:
    """One plain-words log line for an event worth logging (metrics are plotted instead)."""
    if isinstance(event, Started):
        return (f"Training {event.method} on {event.device}: {event.trainable_params:,} of "
                f"{event.total_params:,} weights are trained ({event.trainable_percent:.2f} %); "
                f"{count(event.train_examples, 'training example')}, "
                f"{count(event.val_examples, 'validation example')} and {count(event.test_examples, 'test example')} "
                f"(test: kept for the evaluation, never trained on), {count(event.total_steps, 'step')}.")
    if isinstance(event, Notice):
        return ("Warning: " if event.level == "warning" else "") + event.message
    if isinstance(event, Planned):
        when = f" Expected to take {rough_duration(event.estimate_s)}." if event.estimate_s else ""
        return f"Plan ({'automatic' if event.plan == 'auto' else 'your settings'}): {event.explanation}{when}"
    if isinstance(event, FirstLoss):
        when = "before training" if event.step == 0 else f"on resuming at step {event.step}"
        return f"Loss {when}: {event.loss:.4f} (first examples); the curve starts there."
    if isinstance(event, EvalMetric):
        return (f"Step {event.step}: validation loss {event.val_loss:.4f} "
                f"(best {event.best_val_loss:.4f} at step {event.best_step}).")
    if isinstance(event, GeneralMetric):
        return event.describe()
    if isinstance(event, PreferenceMetric) and event.split == "val":
        return (f"Step {event.step}: the chosen answer wins in {100 * event.accuracy:.0f}% of {event.pairs} validation "
                f"pairs (reward margin {event.reward_margin:+.3f}); preferred answers average "
                f"{event.preferred_length:.0f} tokens, chosen ones {event.chosen_length:.0f}.")
    if isinstance(event, CheckpointSaved):
        return f"Checkpoint saved at step {event.step}: {event.path}"
    if isinstance(event, Finished):
        how = {"completed": "Training finished", "stopped": "Training stopped; what was learned is kept",
               "early_stopped": "Training stopped early because validation loss stopped improving"}
        best = f" Best validation loss {event.best_val_loss:.4f} at step {event.best_step}." \
            if event.best_step is not None and event.best_val_loss is not None else ""
        return f"{how.get(event.reason, 'Training ended')} at step {event.step}. Result: {event.output_path}.{best}"
    if isinstance(event, Failed):
        return f"Training failed: {event.reason} {event.hint}".strip()
    return None
