"""Counting in plain words, for every message the engine and the window show."""
from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """'1 validation example', '3 validation examples'; `plural` for nouns that do not just add an s."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"
