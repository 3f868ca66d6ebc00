"""A white, rounded panel with a title and an optional one-line explanation."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from gui.style import label


class Card(QFrame):
    """A titled panel; put content into `card.body` (a QVBoxLayout).

    `keep_whole`: never let the surrounding layout squeeze the card below what its content needs at its
    current width. Layouts with word-wrapped labels about (height for width) may otherwise do so, and
    then the card's controls overlap; with it, the page scrolls instead.
    """

    def __init__(self, title: str, hint: str = "", parent: Optional[QWidget] = None, *, keep_whole: bool = False):
        super().__init__(parent)
        self._keep_whole = keep_whole
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

    def event(self, event) -> bool:
        if self._keep_whole and event.type() in (QEvent.LayoutRequest, QEvent.Resize):
            needed = self.layout().totalMinimumHeightForWidth(self.width())
            if needed != self.minimumHeight():
                self.setMinimumHeight(needed)
        return super().event(event)
