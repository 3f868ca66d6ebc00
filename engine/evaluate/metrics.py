"""Task metrics comparing a generated answer with the reference: exact match, chrF and ROUGE-L.

- exact match: the answers are equal after lower-casing, trimming and collapsing spaces, and
  ignoring a final full stop ("Paris." counts as "paris").
- chrF: character n-gram F-score (sacrebleu), 0-100; robust to small wording changes.
- ROUGE-L: F-measure of the longest common subsequence of words, 0-100; rewards the right words
  in the right order.
"""
from __future__ import annotations

import re
from statistics import fmean
from typing import Iterable

_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding whitespace or final punctuation."""
    return _SPACES.sub(" ", text.strip().casefold()).rstrip(".!?;:,").strip()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the answers are the same after normalise(), else 0.0."""
    return 1.0 if normalise(prediction) == normalise(reference) else 0.0


def chrf(prediction: str, reference: str) -> float:
    """sacrebleu's chrF (character 6-grams, beta 2) for one answer, 0-100."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(prediction, [reference]).score)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length by dynamic programming, keeping one row (O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if item == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased words, 0-100 (0 when either side has no words)."""
    predicted, wanted = _WORDS.findall(prediction.casefold()), _WORDS.findall(reference.casefold())
    if not predicted or not wanted:
        return 0.0
    common = _lcs_length(predicted, wanted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 100.0 * 2 * precision * recall / (precision + recall)


def score_answer(prediction: str, reference: str) -> dict[str, float]:
    """All task metrics for one answer."""
    return {"exact_match": exact_match(prediction, reference), "chrf": chrf(prediction, reference),
            "rouge_l": rouge_l(prediction, reference)}


def summarise(scores: Iterable[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over examples; exact match becomes a share (0-1). Empty input gives {}."""
    scores = list(scores)
    if not scores:
        return {}
    return {name: round(fmean(s[name] for s in scores), 4) for name in scores[0]}
