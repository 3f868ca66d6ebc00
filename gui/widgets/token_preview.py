"""Shows one example exactly as it is trained: template applied, special tokens visible,
learned text and masked text in different colours, with a legend in plain words."""
from __future__ import annotations

import html
import re
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from gui import style
from gui.style import label

# Control tokens of the common templates: <|im_start|>, <|eot_id|>, <s>, </s>, [INST] ...
SPECIAL_TOKEN = re.compile(r"(<\|[^|<>]{1,40}\|>|</?s>|\[/?INST\]|<unk>|<pad>)")


def _piece_html(text: str, trained: bool) -> str:
    """One rendered piece as HTML: special tokens tinted, line breaks shown as ↵ then broken."""
    parts = []
    for i, chunk in enumerate(SPECIAL_TOKEN.split(text)):
        if not chunk:
            continue
        escaped = html.escape(chunk).replace("\n", "<span style='color:#b0b6c2'>↵</span><br>")
        escaped = escaped.replace("  ", "&nbsp; ")
        if i % 2 == 1:  # odd chunks are the separators the regex captured: special tokens
            parts.append(f"<span style='color:{style.SPECIAL_TEXT}; font-weight:600'>{escaped}</span>")
        else:
            parts.append(escaped)
    inner = "".join(parts)
    if trained:
        return (f"<span style='background:{style.TRAINED_BG}; color:{style.TRAINED_TEXT}; "
                f"font-weight:600'>{inner}</span>")
    return f"<span style='color:{style.MASKED_TEXT}'>{inner}</span>"


def _runs(pieces: list[dict]) -> list[tuple[str, bool]]:
    """Join neighbouring pieces with the same learned/masked mark (one span each, not one per token)."""
    runs: list[tuple[str, bool]] = []
    for piece in pieces:
        trained = bool(piece["trained"])
        if runs and runs[-1][1] == trained:
            runs[-1] = (runs[-1][0] + piece["text"], trained)
        else:
            runs.append((piece["text"], trained))
    return runs


class TokenPreview(QWidget):
    """A read-only view of rendered pieces ([{text, trained}]) plus its legend."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setStyleSheet("font-family: 'DejaVu Sans Mono', monospace; font-size: 9.5pt; padding: 6px;")
        layout.addWidget(self.text, 1)
        # Short enough for one line at the usual window width; it wraps between entries if narrower.
        entry = "<span style='background:{}; color:{}; font-weight:600'>&nbsp;{}&nbsp;</span>&nbsp;{}"
        self.legend = label("&nbsp;&nbsp;&nbsp; ".join((
            entry.format(style.TRAINED_BG, style.TRAINED_TEXT, "Learned", "the model learns to write this"),
            entry.format("#eef1f6", style.MASKED_TEXT, "Context", "read,&nbsp;not&nbsp;learned"),
            entry.format("#f3ecff", style.SPECIAL_TEXT, "&lt;|…|&gt;", "template&nbsp;markers"),
        )), "hint")
        self.legend.setTextFormat(Qt.RichText)
        layout.addWidget(self.legend)
        self.note = label("", "hint")
        layout.addWidget(self.note)
        self.pieces: list[dict] = []

    def show_pieces(self, pieces: list[dict], *, truncated: bool = False, tokens: int = 0,
                    problem: Optional[str] = None) -> None:
        """Display rendered pieces; `truncated` says the example was cut at the maximum length, `problem`
        why training leaves it out (e.g. its text lacks the completion separator)."""
        self.pieces = list(pieces)
        self.text.setHtml("<div style='line-height:150%'>" +
                          "".join(_piece_html(text, trained) for text, trained in _runs(pieces)) + "</div>")
        notes = []
        if tokens:
            notes.append(f"{tokens} tokens.")
        if problem:
            notes.append(f"Training leaves this example out: {problem}.")
        elif not any(p["trained"] for p in pieces):
            notes.append("Nothing in this example is learned: after cutting at the maximum length no answer "
                         "is left. Raise the maximum length or shorten the example.")
        elif truncated:
            notes.append("This example is longer than the maximum length, so its end is cut off.")
        self.note.setText(" ".join(notes))

    def show_message(self, message: str) -> None:
        """Replace the preview with a plain message (loading, or why there is nothing to show)."""
        self.pieces = []
        self.text.setHtml(f"<div style='color:{style.MUTED}; white-space:pre-wrap'>{html.escape(message)}</div>")
        self.note.setText("")

    def trained_text(self) -> str:
        """All learned text, concatenated (used by tests and accessibility)."""
        return "".join(p["text"] for p in self.pieces if p["trained"])

    def masked_text(self) -> str:
        """All context (not learned) text, concatenated."""
        return "".join(p["text"] for p in self.pieces if not p["trained"])
