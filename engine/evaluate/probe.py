"""The general-ability probe: did fine-tuning make the model forget what it knew (catastrophic forgetting)?

The probe (resources/general_probe.json) is a few dozen short questions with known answers
(arithmetic, capitals, opposites, spelling, simple facts, following a format) and a neutral
paragraph. Base and tuned model answer the same questions, greedily, in the run's chat layout.

    general ability kept = ( answer ratio + perplexity ratio ) / 2            (0..1, shown as %)
    answer ratio         = min(1, tuned accuracy / base accuracy)   (1 when the base got none right)
    perplexity ratio     = min(1, base perplexity / tuned perplexity)   on the neutral paragraph

So 100% means the tuned model answers the probe at least as well as the base and reads ordinary
text at least as easily; each half falls in proportion to the loss.
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


KEPT_WELL = 0.95  # at or above: no meaningful loss
KEPT_SOME = 0.80  # at or above: some loss; below: the model forgot a lot

ADVICE = (
    "Lower the learning rate (training.lr), e.g. halve it.",
    "Train for fewer epochs (training.epochs), or keep early stopping on.",
    "Use a smaller LoRA rank (method.lora_r), or LoRA instead of full fine-tuning.",
    "Mix general-purpose data back in (data.mix_path with data.mix_ratio around 0.1 to 0.3).",
)


@dataclass(frozen=True)
class ProbeItem:
    category: str
    prompt: str
    answers: tuple
    case_sensitive: bool = False

    def is_right(self, reply: str) -> bool:
        """Whether one of the accepted answers appears in the reply as a whole word or phrase."""
        flags = 0 if self.case_sensitive else re.IGNORECASE
        return any(re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", reply, flags) for answer in self.answers)


@dataclass(frozen=True)
class Probe:
    items: tuple
    text: str
    max_new_tokens: int = 24
    source: str = ""


def load_probe(path=None) -> Probe:
    """Read the probe file (default: the built-in one)."""
    from engine.evaluate.runfolder import EvaluationError

    path = Path(path) if path else builtin_probe_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = tuple(ProbeItem(category=i.get("category", ""), prompt=i["prompt"], answers=tuple(i["answers"]),
                                case_sensitive=bool(i.get("case_sensitive", False))) for i in data["items"])
    except OSError as exc:
        raise EvaluationError(f"{path}: the probe file cannot be read ({exc.strerror}).") from None
    except (ValueError, KeyError, TypeError, AttributeError):
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


def general_ability_kept(base: ProbeResult, tuned: ProbeResult) -> dict[str, Any]:
    """The score in the module docstring, with its two halves, a plain-words verdict and what to try."""
    answer_ratio = 1.0 if base.accuracy == 0 else min(1.0, tuned.accuracy / base.accuracy)
    base_ppl, tuned_ppl = base.text_perplexity, tuned.text_perplexity
    if base_ppl and tuned_ppl:
        perplexity_ratio = min(1.0, base_ppl / tuned_ppl)
        kept = (answer_ratio + perplexity_ratio) / 2
    else:  # the paragraph was not read (stopped early): the answers alone decide
        perplexity_ratio, kept = None, answer_ratio
    percent = round(100 * kept)
    if kept >= KEPT_WELL:
        verdict, advice = f"General ability kept: {percent}%. The tuned model still knows what the base model knew.", []
    elif kept >= KEPT_SOME:
        verdict = (f"General ability kept: {percent}%. The tuned model lost a little of its general knowledge; "
                   "fine if it only has to do your task, otherwise try the suggestions below.")
        advice = list(ADVICE)
    else:
        verdict = (f"General ability kept: {percent}%. The tuned model forgot much of what it knew "
                   "(catastrophic forgetting): it may now answer everything like your training data.")
        advice = list(ADVICE)
    return {"general_ability_kept": round(kept, 4), "answer_ratio": round(answer_ratio, 4),
            "perplexity_ratio": None if perplexity_ratio is None else round(perplexity_ratio, 4),
            "verdict": verdict, "advice": advice,
            "formula": "mean of min(1, tuned probe accuracy / base probe accuracy) and "
                       "min(1, base perplexity / tuned perplexity) on a neutral paragraph"}
