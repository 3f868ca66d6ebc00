"""The curves of preference tuning (dpo, orpo), beside the loss: three small plots in a row.

Reward margin: how much more the model rewards the chosen answer than the rejected one (training
pairs each step, validation pairs at each check). Held-out pairs: the share whose chosen answer
wins. Length: the mean length of the answer the model prefers, against that of the chosen answers;
a preferred length pulling away above it is the first sign of "verbose without substance".
Redrawn by a timer like the loss plot, never per event.
"""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui import style
from gui.training_curves import PreferenceCurves
from gui.widgets.loss_plot import TRAIN_COLOUR, VAL_COLOUR
from gui.widgets.throttled_plot import ThrottledPlot

ACCURACY_COLOUR = "#1a9e4b"
CHOSEN_COLOUR = "#8a93a3"


def _small_plot(layout: pg.GraphicsLayoutWidget, title: str) -> pg.PlotItem:
    """One of the three plots: the title says what is drawn, the x axis counts steps as on the loss plot."""
    plot = layout.addPlot(title=f"<span style='color:{style.TEXT}; font-size:9pt'>{title}</span>")
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.showGrid(x=False, y=True, alpha=0.2)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).setTextPen(style.MUTED)
        plot.getAxis(axis).setPen(style.BORDER)
        plot.getAxis(axis).enableAutoSIPrefix(False)  # margins of 0.001 stay 0.001, not "1 (x0.001)"
    return plot


class PreferencePlot(ThrottledPlot):
    """Draws a PreferenceCurves; `set_curves` records, a timer redraws."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(PreferenceCurves(), parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setMinimumHeight(150)
        layout.addWidget(self.canvas)
        self.margin_plot = _small_plot(self.canvas, "Reward margin (chosen − rejected)")
        self.margin_plot.addLine(y=0, pen=pg.mkPen(style.BORDER, width=1))
        self.train_margin = self.margin_plot.plot([], [], pen=pg.mkPen(TRAIN_COLOUR, width=1.5))
        self.val_margin = self.margin_plot.plot([], [], pen=pg.mkPen(VAL_COLOUR, width=2), symbol="o", symbolSize=6,
                                                symbolBrush=VAL_COLOUR, symbolPen=None)
        self.accuracy_plot = _small_plot(self.canvas, "Held-out pairs: chosen preferred (%)")
        self.accuracy_plot.setYRange(0, 100, padding=0.05)
        self.accuracy_plot.addLine(y=50, pen=pg.mkPen(style.BORDER, width=1, style=pg.QtCore.Qt.DashLine))
        self.accuracy = self.accuracy_plot.plot([], [], pen=pg.mkPen(ACCURACY_COLOUR, width=2), symbol="o",
                                                symbolSize=6, symbolBrush=ACCURACY_COLOUR, symbolPen=None)
        self.length_plot = _small_plot(self.canvas, "Preferred answer length (tokens)")
        self.preferred_length = self.length_plot.plot([], [], pen=pg.mkPen(VAL_COLOUR, width=2), symbol="o",
                                                      symbolSize=6, symbolBrush=VAL_COLOUR, symbolPen=None)
        self.chosen_length = self.length_plot.plot([], [], pen=pg.mkPen(CHOSEN_COLOUR, width=1.5,
                                                                         style=pg.QtCore.Qt.DashLine))
        # One step axis for all three: validation points alone (one check so far) would get a range of their own.
        self.accuracy_plot.setXLink(self.margin_plot)
        self.length_plot.setXLink(self.margin_plot)
    def shown_data(self) -> dict[str, list]:
        """What the plots show now (for tests): the arrays of each line."""
        data = {}
        for name in ("train_margin", "val_margin", "accuracy", "preferred_length", "chosen_length"):
            x, y = getattr(self, name).getData()
            data[name] = [] if y is None else [float(v) for v in y]
        return data

    def _draw(self) -> None:
        c = self._curves
        self.train_margin.setData(list(c.train_steps), list(c.train_margins))
        val_steps = [m.step for m in c.val]
        self.val_margin.setData(val_steps, [m.reward_margin for m in c.val])
        self.accuracy.setData(val_steps, [100 * m.accuracy for m in c.val])
        self.preferred_length.setData(val_steps, [m.preferred_length for m in c.val])
        self.chosen_length.setData(val_steps, [m.chosen_length for m in c.val])
