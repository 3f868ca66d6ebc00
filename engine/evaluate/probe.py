"""The probe: a few dozen short questions with known answers, asked of base and tuned alike.

A human-readable companion to the benchmark (engine.evaluate.general_ability), which gives the
forgetting verdict: here a person can read what each model actually answers (arithmetic,
capitals, opposites, spelling, simple facts, following a format), greedily, in the run's chat
layout, and each answer is graded strictly: right only when the reply starts with an accepted
answer as a whole word (after opening quotes or markdown), or matches one of the item's stated
patterns from its first character. "Kepler-41B" for "Which planet do we live on?" is wrong, and so
is "The opposite of hot is cold... or warm": a reply that rambles towards the answer does not count.
The perplexity of a neutral paragraph is measured too.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional


def builtin_probe_file() -> Path:
    """resources/general_probe.json, from a checkout or an installed copy alike."""
    from importlib.resources import files

    return Path(str(files("resources") / "general_probe.json"))


GRADING = ("right when the reply starts with an accepted answer as a whole word (after opening quotes or "
           "markdown), or matches one of the item's patterns from its first character")
_LEADING = re.compile(r"^[\s\"'*_`>#:-]+")


@dataclass(frozen=True)
class ProbeItem:
    category: str
    prompt: str
    answers: tuple
    case_sensitive: bool = False
    patterns: tuple = ()  # regular expressions matched from the reply's first character

    def is_right(self, reply: str) -> bool:
        """Strict grading (see the module docstring): the reply starts with an answer, or matches a pattern."""
        flags = 0 if self.case_sensitive else re.IGNORECASE
        text = _LEADING.sub("", reply)
        if any(re.match(rf"{re.escape(answer)}(?!\w)", text, flags) for answer in self.answers):
            return True
        return any(re.match(pattern, text, flags) for pattern in self.patterns)


@dataclass(frozen=True)
class Probe:
    items: tuple
    text: str
    max_new_tokens: int = 24
    source: str = ""
    grading: str = GRADING


def load_probe(path=None) -> Probe:
    """Read the probe file (default: the built-in one)."""
    from engine.evaluate.runfolder import EvaluationError

    path = Path(path) if path else builtin_probe_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = tuple(ProbeItem(category=i.get("category", ""), prompt=i["prompt"], answers=tuple(i["answers"]),
                                case_sensitive=bool(i.get("case_sensitive", False)),
                                patterns=tuple(i.get("patterns", ()))) for i in data["items"])
        for item in items:
            for pattern in item.patterns:
                re.compile(pattern)
    except OSError as exc:
        raise EvaluationError(f"{path}: the probe file cannot be read ({exc.strerror}).") from None
    except (ValueError, KeyError, TypeError, AttributeError, re.error):
        raise EvaluationError(f"{path}: not a probe file. It must be JSON with 'items' (each with 'prompt' and "
                              "'answers') and an optional 'text'; see resources/general_probe.json.") from None
    return Probe(items=items, text=data.get("text", ""), max_new_tokens=int(data.get("max_new_tokens", 24)),
                 source=str(path))


@dataclass
class ProbeResult:
    """How one side did on the probe."""

    correct: int = 0
    total: int = 0
    text_loss: Optional[float] = None
    answers: list = field(default_factory=list)  # {category, prompt, reply, right}

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def text_perplexity(self) -> Optional[float]:
        from engine.evaluate.loss import perplexity

        return perplexity(self.text_loss)

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": round(self.accuracy, 4), "correct": self.correct, "total": self.total,
                "text_loss": self.text_loss, "text_perplexity": self.text_perplexity, "answers": self.answers}


def run_probe(loaded, side: str, probe: Probe, on_item: Optional[Callable[[], None]] = None,
              stop: Any = None) -> ProbeResult:
    """Ask every probe question of one side ("base"/"tuned") of a loaded run, and read the neutral text."""
    from engine.evaluate.generate import generate_batch
    from engine.evaluate.loss import text_loss
    from engine.evaluate.settings import GenerationSettings
    from engine.templates import prompt_ids

    settings = GenerationSettings(max_new_tokens=probe.max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    result = ProbeResult()
    prompts = [prompt_ids([{"role": "user", "content": item.prompt}], loaded.tokenizer) for item in probe.items]

    def counted(done: int) -> None:
        if on_item:
            for _ in range(done):
                on_item()

    with loaded.side(side) as model:
        replies = generate_batch(model, loaded.tokenizer, prompts, settings, stop, on_batch=counted)
        for item, reply in zip(probe.items, replies):
            right = item.is_right(reply)
            result.correct += int(right)
            result.total += 1
            result.answers.append({"category": item.category, "prompt": item.prompt, "reply": reply, "right": right})
        if probe.text and not (stop is not None and stop.is_set()):
            result.text_loss = text_loss(model, loaded.tokenizer, probe.text)
    return result
