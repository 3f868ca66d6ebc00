"""Keep general ability: hold the model to its own earlier answers while it learns the user's data.

The seeds' mitigations for catastrophic forgetting are multi-task data and distillation. This one
needs nothing from the user: the base model answers a shipped set of everyday prompts
(resources/general_prompts.json) once, greedily; the answers are cached per base model in the data
folder. During training each step adds a few of those conversations, and the model is pulled back
towards the base model on them:

- LoRA and QLoRA: a KL-to-base penalty. The base model's next-token distribution comes from a
  forward pass with the adapter switched off (no second copy of the weights); the penalty is
  KL(base || tuned) per answer token (engine.train.loss.TokenLoss, objective "kl").
- Full fine-tuning (no adapter to switch off): replay, i.e. ordinary next-token loss on the base's
  own answers (self-distillation with hard labels).

Both terms are averaged over their own tokens and added with weight `WEIGHT` to the user's loss, so
a long general answer never drowns a short training answer.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

ANSWER_TOKENS = 48  # the base's answers are cut here: enough to carry its manner, cheap to make
WEIGHT = 1.0  # the general term's weight beside the user's loss (both per-token means)
CACHE_VERSION = 1
ANSWERS_FOLDER = "general-answers"  # in the data folder: the base models' answers, one file per model


def builtin_prompts_file() -> Path:
    from importlib.resources import files

    return Path(str(files("resources") / "general_prompts.json"))


def load_prompts(path: Optional[Path] = None) -> list[str]:
    data = json.loads(Path(path or builtin_prompts_file()).read_text(encoding="utf-8"))
    return [str(p) for p in data["prompts"]]


def objective_for(method: str) -> str:
    """"kl" where the adapter can be switched off to see the base model, else "replay"."""
    return "kl" if method in ("lora", "qlora") else "replay"


def cache_path(model_dir: Path, tokenizer, prompts: Sequence[str]) -> Path:
    """One file per base model (its config and weights' names and sizes), template and prompt set."""
    from engine import paths

    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.glob("*.json")) + sorted(p.name for p in model_dir.glob("*.safetensors")):
        file = model_dir / name
        digest.update(name.encode())
        digest.update(str(file.stat().st_size).encode())
        if file.suffix == ".json" and file.stat().st_size < 1_000_000:
            digest.update(file.read_bytes())
    digest.update(str(getattr(tokenizer, "chat_template", "") or "").encode())
    digest.update(json.dumps([CACHE_VERSION, ANSWER_TOKENS, list(prompts)]).encode())
    folder = paths.data_dir() / ANSWERS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{model_dir.name}-{digest.hexdigest()[:16]}.jsonl"


def base_answers(model, tokenizer, model_dir: Path, *, prompts: Optional[Sequence[str]] = None,
                 notice: Callable[[str], None] = lambda message: None, batch_size: int = 32) -> list[dict]:
    """[{prompt, answer}] from the cache, or written now by the base model (adapter off), then cached.

    Must run before any training step: for full fine-tuning `model` is the base model only then.
    """
    import contextlib

    from engine.evaluate.generate import generate_batch
    from engine.evaluate.settings import GenerationSettings
    from engine.templates import prompt_ids

    prompts = list(prompts if prompts is not None else load_prompts())
    path = cache_path(model_dir, tokenizer, prompts)
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if [r.get("prompt") for r in rows] == prompts:
            return rows
    notice(f"Keep general ability: the base model answers {len(prompts)} general prompts once (cached for later "
           "runs with this model).")
    settings = GenerationSettings(max_new_tokens=ANSWER_TOKENS, temperature=0.0, repetition_penalty=1.0)
    ids = [prompt_ids([{"role": "user", "content": p}], tokenizer) for p in prompts]
    was_training = model.training
    model.eval()
    off = getattr(model, "disable_adapter", None)
    with (off() if callable(off) else contextlib.nullcontext()):
        answers = generate_batch(model, tokenizer, ids, settings, batch_size=batch_size)
    model.train(was_training)
    rows = [{"prompt": p, "answer": a} for p, a in zip(prompts, answers)]  # empty ones too: the cache is complete
    temp = path.with_suffix(f".{os.getpid()}.tmp")  # several processes (one per GPU) may write at once
    temp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    temp.replace(path)
    return rows


def render_answers(rows: Sequence[dict], tokenizer, max_length: int) -> list:
    """The cached conversations rendered exactly like training examples (only the answer is learned)."""
    from engine.data.formats import Example
    from engine.templates import render

    rendered = []
    for i, row in enumerate(rows, start=1):
        if not str(row.get("answer", "")).strip():
            continue
        example = Example(row=i, messages=[{"role": "user", "content": row["prompt"]},
                                           {"role": "assistant", "content": row["answer"]}])
        item = render(example, tokenizer, max_length=max_length)
        if not item.rejection:
            rendered.append(item)
    return rendered


def extra_memory_bytes(per_step: int, mean_length: float, vocab: int) -> int:
    """Memory the KL term adds: fp32 log-probabilities of base and tuned model and their gradient, per
    answer token of one step's general examples (their activations are no larger than a user pass's)."""
    return int(per_step * mean_length * vocab * 4 * 3)


@dataclass
class KeepGeneral:
    """The general conversations and how many of them each optimizer step adds."""

    examples: list  # Rendered
    per_step: int
    objective: str  # "kl" | "replay"
    weight: float = WEIGHT
    seed: int = 0

    def indices(self, step: int) -> list[int]:
        """The general examples of 0-based step `step`: a seeded shuffle per pass, like the user's data."""
        count = len(self.examples)
        if not count or self.per_step <= 0:
            return []
        start = step * self.per_step
        chosen = []
        for position in range(start, start + self.per_step):
            lap, within = divmod(position, count)
            order = list(range(count))
            random.Random(self.seed * 7_919 + lap).shuffle(order)
            chosen.append(order[within])
        return chosen

    def mean_length(self) -> float:
        return sum(len(e.input_ids) for e in self.examples) / max(1, len(self.examples))


def prepare(plan, method: str, model, tokenizer, model_dir: Path, config, *,
            notice: Callable[..., None] = lambda message, level="info": None) -> Optional[KeepGeneral]:
    """The run's general conversations (the base model's own answers, written once per model), or None
    when the base model gave no usable answer. Call before the first training step."""
    rows = base_answers(model, tokenizer, model_dir, notice=notice)
    examples = render_answers(rows, tokenizer, config.data.max_length)
    if not examples:
        notice("Keep general ability is off for this run: the base model gave no usable answers to the general "
               "prompts.", "warning")
        return None
    objective = objective_for(method)
    how = ("keeping the model's answers close to the base model's (KL to base)" if objective == "kl"
           else "trained on the base model's own answers (replay)")
    notice(f"Keep general ability is {plan.keep_general_note}. Each step adds {plan.general_per_step} of "
           f"{len(examples)} general conversations, {how}.")
    return KeepGeneral(examples, plan.general_per_step, objective, weight=WEIGHT, seed=config.training.seed)
