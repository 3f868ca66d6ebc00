"""Token-length histogram with a line at the maximum length and a count of the examples it cuts."""
from __future__ import annotations

from typing import Optional, Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui import style
from gui.style import label


def bar_chart(bottom: str, left: str, minimum_height: int) -> tuple[pg.PlotWidget, pg.BarGraphItem]:
    """A still (no mouse, no menu) white plot with muted, labelled axes and an empty set of bars."""
    plot = pg.PlotWidget(background="w")
    plot.setMinimumHeight(minimum_height)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setLabel("bottom", bottom, color=style.MUTED)
    plot.setLabel("left", left, color=style.MUTED)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).setTextPen(style.MUTED)
        plot.getAxis(axis).setPen(style.BORDER)
    bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=style.ACCENT, pen=pg.mkPen(style.CARD))
    plot.addItem(bars)
    return plot, bars


class LengthHistogram(QWidget):
    """`set_lengths(list[int])` draws the histogram; `set_max_length(n)` moves the red line."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot, self.bars = bar_chart("tokens per example", "examples", 130)
        self.line = pg.InfiniteLine(angle=90, movable=False,
                                    pen=pg.mkPen(style.ERROR_TEXT, width=2, style=pg.QtCore.Qt.DashLine))
        self.plot.addItem(self.line)
        layout.addWidget(self.plot)
        self.summary = label("", "hint")
        layout.addWidget(self.summary)
        self.lengths: list[int] = []
        self.total = 0
        self.max_length = 0

    def set_lengths(self, lengths: Sequence[int], total: int = 0) -> None:
        """Draw the distribution of example lengths (in tokens, before cutting).

        `total`: how many examples the dataset has, when `lengths` is only a sample of them.
        """
        self.lengths = [int(n) for n in lengths]
        self.total = max(total, len(self.lengths))
        if not self.lengths:
            self.bars.setOpts(x0=[], x1=[], height=[])
            self.plot.setXRange(0, self.max_length * 1.05 + 1, padding=0)
            self._update_summary()
            return
        top = max(max(self.lengths), self.max_length or 0)
        bins = 30
        width = max(1, -(-top // bins))  # ceil, so the longest example falls inside the last bin
        counts = [0] * bins
        for n in self.lengths:
            counts[min(bins - 1, n // width)] += 1
        self.bars.setOpts(x0=[i * width for i in range(bins)], x1=[(i + 1) * width for i in range(bins)],
                          height=counts)
        self.plot.setXRange(0, top * 1.05 + 1, padding=0)
        self.plot.setYRange(0, max(counts) * 1.1 + 1, padding=0)
        self._update_summary()

    def set_max_length(self, max_length: int) -> None:
        """Move the maximum-length line and recount the examples it cuts."""
        self.max_length = int(max_length)
        self.line.setValue(self.max_length)
        if not self.lengths or self.max_length > max(self.lengths):
            self.plot.setXRange(0, self.max_length * 1.05 + 1, padding=0)
        self._update_summary()

    def cut_count(self) -> int:
        """How many examples are longer than the maximum length."""
        return sum(1 for n in self.lengths if n > self.max_length)

    def _update_summary(self) -> None:
        if not self.lengths:
            self.summary.setText("")
            return
        cut = self.cut_count()
        longest = max(self.lengths)
        text = (f"Longest example: {longest} tokens. Maximum length (red line): {self.max_length}. ")
        if cut:
            text += f"{cut} of {len(self.lengths)} examples are longer and will be cut at the end."
        else:
            text += "No example is cut."
        if self.total > len(self.lengths):
            text += f" (Measured on {len(self.lengths):,} of the {self.total:,} examples.)"
        self.summary.setText(text)
