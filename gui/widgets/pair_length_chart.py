"""How much longer the chosen answer is than the rejected one, pair by pair, as a small histogram.

Longer chosen answers are a known bias of preference data: a model tuned on it can learn "longer
wins" instead of "better wins". Bars right of the zero line are pairs whose chosen answer is longer.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.data.preference import LENGTH_BIAS_SHARE
from engine.data.preference_build import length_difference
from gui import style
from gui.style import label
from gui.widgets.length_histogram import bar_chart

BINS = 25


def difference_bins(differences: Sequence[int], bins: int = BINS) -> tuple[list[float], list[float], list[int]]:
    """(left edges, right edges, counts) of a histogram symmetric around zero."""
    reach = max([abs(d) for d in differences] + [1])
    width = max(1.0, 2 * reach / bins)
    counts = [0] * bins
    for d in differences:
        counts[min(bins - 1, int((d + reach) // width))] += 1
    lefts = [-reach + i * width for i in range(bins)]
    return lefts, [left + width for left in lefts], counts


class PairLengthChart(QWidget):
    """`set_pairs([(chosen tokens, rejected tokens)])` draws chosen-minus-rejected per pair."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot, self.bars = bar_chart("chosen minus rejected, tokens (right of 0: chosen is longer)", "pairs", 90)
        self.plot.addItem(pg.InfiniteLine(pos=0, angle=90, movable=False, pen=pg.mkPen(style.TEXT, width=1)))
        layout.addWidget(self.plot)
        self.summary = label("", "hint")
        layout.addWidget(self.summary)
        self.differences: list[int] = []

    def set_pairs(self, lengths: Sequence[tuple[int, int]]) -> None:
        self.differences = [int(c) - int(r) for c, r in lengths]
        if not self.differences:
            self.bars.setOpts(x0=[], x1=[], height=[])
            self.summary.setText("")
            return
        lefts, rights, counts = difference_bins(self.differences)
        self.bars.setOpts(x0=lefts, x1=rights, height=counts)
        self.plot.setXRange(lefts[0], rights[-1], padding=0.02)
        self.plot.setYRange(0, max(counts) * 1.1 + 1, padding=0)
        summary = length_difference(list(lengths))
        longer = summary["chosen_longer_share"]
        text = (f"The chosen answer is longer in {100 * longer:.0f}% of {summary['pairs']} pairs "
                f"(median difference {summary['median_difference']:+.0f} tokens).")
        if longer >= LENGTH_BIAS_SHARE:
            text += " The model may learn that longer wins: compare answer lengths after training."
        self.summary.setText(text)
