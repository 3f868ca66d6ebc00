"""One preference pair as training sees it: the shared prompt once, then the chosen and the rejected
answer side by side, each with its length in tokens."""
from __future__ import annotations

import html
from typing import Optional

from PySide6.QtWidgets import QHBoxLayout, QTextBrowser, QVBoxLayout, QWidget

from gui import style
from gui.style import label
from gui.widgets.token_preview import SPECIAL_TOKEN

CHOSEN_BG = style.TRAINED_BG
REJECTED_BG = "#fbe3e1"
REJECTED_TEXT = "#7a1d16"


def _text_html(text: str, colour: str = "") -> str:
    """Escaped text with template markers tinted and line breaks kept."""
    parts = []
    for i, chunk in enumerate(SPECIAL_TOKEN.split(text)):
        if not chunk:
            continue
        escaped = html.escape(chunk).replace("\n", "<br>").replace("  ", "&nbsp; ")
        if i % 2 == 1:
            parts.append(f"<span style='color:{style.SPECIAL_TEXT}; font-weight:600'>{escaped}</span>")
        else:
            parts.append(escaped)
    colour_css = f"color:{colour};" if colour else ""
    return f"<div style='line-height:145%; {colour_css}'>{''.join(parts)}</div>"


def _box(minimum_height: int) -> QTextBrowser:
    box = QTextBrowser()
    box.setOpenLinks(False)
    box.setMinimumHeight(minimum_height)
    box.setStyleSheet("font-family: 'DejaVu Sans Mono', monospace; font-size: 9.5pt; padding: 4px;")
    return box


class PairPreview(QWidget):
    """`show_pair(preview)` with a gui.views.dataset_jobs.PairPreview; `show_message` for anything else."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.prompt_title = label("Prompt (shared by both answers, read, not learned)", "hint")
        layout.addWidget(self.prompt_title)
        self.prompt = _box(70)
        layout.addWidget(self.prompt, 2)
        sides = QHBoxLayout()
        self.titles, self.answers = {}, {}
        for side, text, colour in (("chosen", "Chosen: the model learns to prefer this", style.TRAINED_TEXT),
                                   ("rejected", "Rejected: the model learns to prefer this less", REJECTED_TEXT)):
            column = QVBoxLayout()
            self.titles[side] = label(text, "subtitle")
            self.titles[side].setStyleSheet(f"color: {colour};")
            column.addWidget(self.titles[side])
            self.answers[side] = _box(90)
            background = CHOSEN_BG if side == "chosen" else REJECTED_BG
            self.answers[side].setStyleSheet(self.answers[side].styleSheet() + f" background: {background};")
            column.addWidget(self.answers[side], 1)
            sides.addLayout(column, 1)
        layout.addLayout(sides, 3)
        self.note = label("", "hint")
        layout.addWidget(self.note)
        self.preview = None

    def show_pair(self, preview) -> None:
        """Show a rendered pair: prompt text, both answers and their token counts."""
        self.preview = preview
        self.prompt.setHtml(_text_html(preview.prompt, style.MASKED_TEXT))
        # Scroll to the last question (after any system text), its first line at the top of the box.
        self.prompt.verticalScrollBar().setValue(self.prompt.verticalScrollBar().maximum())
        if preview.question and self.prompt.find(preview.question.strip().splitlines()[0][:60]):
            cursor = self.prompt.textCursor()
            cursor.clearSelection()
            self.prompt.setTextCursor(cursor)
        for side in ("chosen", "rejected"):
            self.answers[side].setHtml(_text_html(getattr(preview, side)))
            tokens = getattr(preview, f"{side}_tokens")
            base = "Chosen" if side == "chosen" else "Rejected"
            self.titles[side].setText(f"{base} · {tokens} tokens")
        difference = preview.chosen_tokens - preview.rejected_tokens
        longer = ("the chosen answer is longer" if difference > 0 else "the rejected answer is longer" if difference < 0
                  else "both answers are as long")
        notes = [f"Prompt: {preview.prompt_tokens} tokens; {longer} ({difference:+d} tokens)."]
        if preview.truncated:
            notes.append("This pair is longer than the maximum length: the answers are cut at the end.")
        self.note.setText(" ".join(notes))

    def show_message(self, message: str) -> None:
        self.preview = None
        self.prompt.setHtml(f"<div style='color:{style.MUTED}; white-space:pre-wrap'>{html.escape(message)}</div>")
        for side in ("chosen", "rejected"):
            self.answers[side].setHtml("")
        self.note.setText("")
