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
