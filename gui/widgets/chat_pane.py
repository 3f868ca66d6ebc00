"""One side of the side-by-side chat: a titled, read-only transcript that grows as tokens stream in."""
from __future__ import annotations

from typing import Optional

from PySide6.QtGui import QGuiApplication, QTextCharFormat, QTextCursor, QColor, QFont
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from gui.style import ERROR_TEXT, MUTED, label


class ChatPane(QWidget):
    """A transcript: `add_user`, then `begin_answer` / `append_token`... / `end_answer`.

    The text of each finished answer is kept in `answers`, so the caller can send this side's own
    replies back as the conversation history.
    """

    def __init__(self, title: str, subtitle: str = "", parent: Optional[QWidget] = None):
        super().__init__(parent)
        header = QHBoxLayout()
        titles = QVBoxLayout()
        self.title = label(title, "subtitle")
        self.subtitle = label(subtitle, "hint")
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        header.addLayout(titles, 1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy this whole conversation to the clipboard.")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        header.addWidget(self.copy_button)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setPlaceholderText("Answers appear here as they are written.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self.answers: list[str] = []
        self._current: Optional[list[str]] = None

    # --- writing ----------------------------------------------------------------------------
    def add_user(self, text: str) -> None:
        """Show the user's message."""
        self._write_block("You", text, bold=True)

    def begin_answer(self) -> None:
        """Start a new answer; tokens are appended to it."""
        self._current = []
        self._write_block("Model", "", bold=True)

    def append_token(self, text: str) -> None:
        """Add a piece of the answer being written (ignored when no answer is open)."""
        if self._current is None or not text:
            return
        self._current.append(text)
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, QTextCharFormat())
        self.view.setTextCursor(cursor)
        self.view.ensureCursorVisible()

    def end_answer(self, note: str = "") -> str:
        """Close the answer; `note` (e.g. "42 tokens in 1.3 s") is shown small and grey. Returns the answer."""
        answer = "".join(self._current or []).strip()
        if self._current is not None:
            self.answers.append(answer)
        self._current = None
        if note:
            self._append_styled("\n" + note, colour=MUTED, italic=True)
        return answer

    def show_error(self, message: str) -> None:
        """Close any open answer and show a problem in red."""
        if self._current is not None:
            self.end_answer()
        self._append_styled("\n" + message, colour=ERROR_TEXT)

    @property
    def answering(self) -> bool:
        return self._current is not None

    def current_answer(self) -> str:
        return "".join(self._current or [])

    def clear(self) -> None:
        self.view.clear()
        self.answers.clear()
        self._current = None

    def plain_text(self) -> str:
        return self.view.toPlainText()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.plain_text())

    # --- helpers ----------------------------------------------------------------------------
    def _write_block(self, who: str, text: str, bold: bool) -> None:
        separator = "\n\n" if self.view.document().characterCount() > 1 else ""
        self._append_styled(f"{separator}{who}:\n", bold=bold)
        if text:
            self._append_styled(text)

    def _append_styled(self, text: str, *, colour: Optional[str] = None, bold: bool = False,
                       italic: bool = False) -> None:
        fmt = QTextCharFormat()
        if colour:
            fmt.setForeground(QColor(colour))
        if bold:
            fmt.setFontWeight(QFont.Weight.DemiBold)
        fmt.setFontItalic(italic)
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, fmt)
        self.view.setTextCursor(cursor)
        self.view.ensureCursorVisible()
