"""A white, rounded panel with a title and an optional one-line explanation."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from gui.style import label


class Card(QFrame):
    """A titled panel; put content into `card.body` (a QVBoxLayout)."""

    def __init__(self, title: str, hint: str = "", parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("card")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 14, 16, 14)
        outer.setSpacing(8)
        self.title = label(title, "subtitle")
        outer.addWidget(self.title)
        self.hint = label(hint, "hint")
        self.hint.setVisible(bool(hint))
        outer.addWidget(self.hint)
        self.body = QVBoxLayout()
        self.body.setSpacing(8)
        outer.addLayout(self.body)
