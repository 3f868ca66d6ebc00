"""A plot widget that redraws at most ~10 times a second, however often its data changes.

Events arrive far faster than anyone can read a plot, so `set_curves` and `mark_changed` only record
that something changed, and a timer draws when it did. The loss plot and the preference plot share this.
"""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

REDRAW_INTERVAL_MS = 100


class ThrottledPlot(QWidget):
    """Subclasses draw `self._curves` in `_draw()`; callers use set_curves / mark_changed / redraw_now."""

    def __init__(self, curves: Any, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._curves = curves
        self._dirty = False
        self.redraws = 0  # how many times the plot was actually drawn (tests check it is throttled)
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()

    def set_curves(self, curves: Any) -> None:
        """Show these curves; the drawing happens on the next timer tick."""
        self._curves = curves
        self._dirty = True

    def mark_changed(self) -> None:
        """The shown curves object changed in place (new events); draw on the next tick."""
        self._dirty = True

    def redraw_now(self) -> None:
        """Draw immediately (for a run reopened from history, and before taking a screenshot)."""
        self._dirty = True
        self._redraw_if_dirty()

    def _redraw_if_dirty(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        self._draw()

    def _draw(self) -> None:
        raise NotImplementedError
