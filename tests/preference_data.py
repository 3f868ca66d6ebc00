"""A small preference set of our own, written by code: for tests, and as an example of the layout.

Each prompt asks a small arithmetic or word question; the chosen answer gives the result in one
sentence, the rejected one dodges it. The pattern is simple enough for a tiny model to pick up in a
few steps, so a test can see preference accuracy rise on pairs it never trained on.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

DODGES = ("I do not know.", "Maybe ask someone else.", "That is a hard one, I cannot say.")
WORDS = ("cat", "dog", "sea", "sun", "fox", "map", "pen", "cup")


def preference_rows(count: int, seed: int = 0) -> list[dict]:
    """`count` rows in the prompt/chosen/rejected layout."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        if i % 2:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            prompt, answer = f"What is {a} + {b}?", f"The answer is {a + b}."
        else:
            word = rng.choice(WORDS)
            prompt, answer = f"Reverse the word: {word}", f"The answer is {word[::-1]}."
        rows.append({"prompt": prompt, "chosen": answer, "rejected": rng.choice(DODGES)})
    return rows


def write_preference_file(path: Path, count: int = 40, seed: int = 0) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(row) + "\n" for row in preference_rows(count, seed)), encoding="utf-8")
    return path


_RUNS: dict = {}


def dpo_run(tmp_path_factory, model_dir: Path) -> Path:
    """A short DPO (LoRA) run of the tiny model on 48 pairs, trained once per test session; read-only."""
    key = str(model_dir)
    if key not in _RUNS:
        from engine import config as cfg
        from engine.events import Finished
        from engine.train import run_training

        folder = tmp_path_factory.mktemp("dpo-run")
        config = cfg.RunConfig()
        config.model.name, config.out = str(model_dir), str(folder / "run")
        config.data.path = str(write_preference_file(folder / "pairs.jsonl", 48))
        config.data.max_length = 64
        t = config.training
        t.plan = "custom"  # these settings exactly: tiny-model numbers, not the automatic plan for pairs
        t.objective, t.max_steps, t.batch_size, t.lr, t.warmup_ratio, t.precision, t.eval_every = (
            "dpo", 12, 8, 1e-3, 0.0, "fp32", 6)
        config.evaluation.max_new_tokens, config.evaluation.examples, config.evaluation.probe = 12, 4, False
        result = run_training(config)
        assert isinstance(result, Finished), result
        _RUNS[key] = folder / "run"
    return _RUNS[key]
