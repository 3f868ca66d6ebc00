"""Completion-style plain text: the separator between what is given and what is to be written.

A plain-text example such as "table: ...\\nQ: How many?\\nA: SELECT count(*) ..." holds a given part
(up to and including "A:") and a written part (the rest). With the separator named
(`data.completion_separator`), training learns only the written part (unless
`data.train_on_prompt`), and evaluation prompts with the given part and scores the answer.

The setting is written as the user types it: `\\n` means a line break, so a blank line is `\\n\\n`.
A separator that starts with a letter or '#' counts at the start of a line first ("A:" does not
split inside "DATA:"), and anywhere only when no line starts with it.
`propose_separator` looks at a file's texts and suggests the separator most rows share.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional

BLANK_LINE = "\\n\\n"  # the setting's written form of a blank line
PROPOSE_SHARE = 0.9  # a separator is proposed when at least this share of rows has it in the same role
PROPOSE_SAMPLE = 2000  # rows looked at when proposing (the first ones in the file)
# A line label: "A:", "SQL:", "### Response:", followed by a space or the end of the line (not "http://...").
_LABEL = re.compile(r"^[ \t]*((?:#{1,4}[ \t]*)?[A-Za-z][A-Za-z0-9 _-]{0,30}:)(?=[ \t]|$)", re.MULTILINE)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def decode(setting: str) -> str:
    """The separator a setting means: `\\n`, `\\t` and `\\\\` become a line break, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: _ESCAPES[m.group(1)], setting or "")


def encode(separator: str) -> str:
    """The written form of a separator (inverse of `decode`), for settings, messages and the window."""
    return separator.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def answer_start(text: str, setting: str) -> Optional[int]:
    """Where the written part of `text` begins (right after the separator), or None when it has none."""
    separator = decode(setting)
    if not separator:
        return None
    if separator[0].isalpha() or separator[0] == "#":
        at_line_start = re.search(r"(?:^|\n)[ \t]*" + re.escape(separator), text)
        if at_line_start:
            return at_line_start.end()
    found = text.find(separator)
    return None if found < 0 else found + len(separator)


def split_text(text: str, setting: str) -> Optional[tuple[str, str]]:
    """(given, written) for a completion-style text, or None when the separator does not occur."""
    start = answer_start(text, setting)
    return None if start is None else (text[:start], text[start:])


def missing_reason(setting: str) -> str:
    """Why a row is skipped when its text lacks the separator; the same words for every such row."""
    return f"the completion separator '{setting}' does not occur in the text"


@dataclass(frozen=True)
class Proposal:
    """A separator most rows share: its written form, how many of the rows looked at have it, and why."""

    separator: str
    rows: int
    looked_at: int
    why: str

    def to_dict(self) -> dict:
        return {"separator": self.separator, "rows": self.rows, "looked_at": self.looked_at, "why": self.why}


def propose_separator(texts: list[str]) -> Optional[Proposal]:
    """The separator of completion-style texts, or None when the texts show none.

    First choice: a line label ("A:", "### Response:") that begins the last labelled line in nearly
    every row, with text after it: the last section is what is to be written. Else a blank line, when
    nearly every row has one with text on both sides.
    """
    texts = [t for t in texts[:PROPOSE_SAMPLE] if t and t.strip()]
    if not texts:
        return None
    needed = PROPOSE_SHARE * len(texts)
    last_labels = Counter()
    for text in texts:
        labels = list(_LABEL.finditer(text))
        if labels and text[labels[-1].end():].strip():
            last_labels[labels[-1].group(1).strip()] += 1
    if last_labels:
        label, count = last_labels.most_common(1)[0]
        if count >= needed:
            return Proposal(separator=label, rows=count, looked_at=len(texts),
                            why=f"'{label}' starts the last labelled line of {count} of {len(texts)} rows")
    with_blank = sum(1 for t in texts if _has_both_sides(split_text(t, BLANK_LINE)))
    if with_blank >= needed:
        return Proposal(separator=BLANK_LINE, rows=with_blank, looked_at=len(texts),
                        why=f"a blank line parts {with_blank} of {len(texts)} rows")
    return None


def _has_both_sides(parts: Optional[tuple[str, str]]) -> bool:
    return parts is not None and bool(parts[0].strip()) and bool(parts[1].strip())
