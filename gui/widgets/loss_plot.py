"""Training and validation loss on one set of axes, with a marker at the best validation step, and
general knowledge (the share of benchmark questions answered right, scored at each validation) on
a second axis at the right, so forgetting shows beside the losses while it happens.

Events arrive far faster than anyone can read a plot, so `set_curves` only records the new data
and a ~10 Hz timer redraws when something changed. Drawing never happens per event.
"""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget

from gui.training_curves import TrainingCurves
from gui.widgets.throttled_plot import ThrottledPlot

TRAIN_COLOUR = "#3b6fd8"
VAL_COLOUR = "#e07b00"
BEST_COLOUR = "#1a9e4b"
GENERAL_COLOUR = "#8e44ad"
LEGEND_HTML = (f"<span style='color:{TRAIN_COLOUR}'>&#9473;&#9473;</span>&nbsp;Training loss&nbsp;&nbsp;&nbsp; "
               f"<span style='color:{VAL_COLOUR}'>&#9473;&#9679;&#9473;</span>&nbsp;Validation loss&nbsp;&nbsp;&nbsp; "
               f"<span style='color:{BEST_COLOUR}'>&#9733;</span>&nbsp;Best validation step&nbsp;&nbsp;&nbsp; "
               f"<span style='color:{GENERAL_COLOUR}'>&#9476;&#9632;&#9476;</span>&nbsp;General knowledge (right axis)")
# Room left above the highest loss for the "best: step N" label, as a share of the losses' span.
HEADROOM = 0.22


class LossPlot(ThrottledPlot):
    """A pyqtgraph plot of a TrainingCurves; call `set_curves` as often as you like."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(TrainingCurves(), parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "Step")
        self.plot.setLabel("left", "Loss (lower is better)")
        # Horizontal grid lines only: a full translucent grid doubles the cost of every repaint.
        self.plot.showGrid(x=False, y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        # The axes are set by _fit_axes, which changes them only when the data leaves the view: an
        # axis whose range changes must re-render all its labels, the most expensive part of a redraw.
        self.plot.disableAutoRange()
        self.plot.setXRange(0, 10, padding=0)
        self.plot.setYRange(0, 1, padding=0)
        for side in ("left", "bottom"):
            # Keep each axis as a cached image: the curves' repaint region touches the axes, and
            # re-rendering unchanged tick labels every redraw would cost more than the curves.
            self.plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            # Losses below 1 (preference tuning starts at 0.69) stay plain numbers, not "x0.001" scaled ones.
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.train_line = self.plot.plot([], [], pen=pg.mkPen(TRAIN_COLOUR, width=2))
        self.val_line = self.plot.plot([], [], pen=pg.mkPen(VAL_COLOUR, width=2), symbol="o", symbolSize=7,
                                       symbolBrush=VAL_COLOUR, symbolPen=None)
        self.best_marker = pg.ScatterPlotItem(size=16, symbol="star", brush=BEST_COLOUR, pen=pg.mkPen("w"))
        self.plot.addItem(self.best_marker)
        self.best_label = pg.TextItem(color=BEST_COLOUR, anchor=(0.5, 1.6))
        self.plot.addItem(self.best_label)
        # General knowledge in % on its own y axis (right), sharing the step axis.
        item = self.plot.getPlotItem()
        self.general_box = pg.ViewBox(enableMouse=False)
        item.showAxis("right")
        item.scene().addItem(self.general_box)
        item.getAxis("right").linkToView(self.general_box)
        item.getAxis("right").setLabel("General knowledge, % right", color=GENERAL_COLOUR)
        item.getAxis("right").setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.general_box.setXLink(item)
        self.general_box.setYRange(0, 100, padding=0)
        self.general_line = pg.PlotDataItem([], [], pen=pg.mkPen(GENERAL_COLOUR, width=2, style=Qt.PenStyle.DashLine),
                                            symbol="s", symbolSize=6, symbolBrush=GENERAL_COLOUR, symbolPen=None)
        self.general_box.addItem(self.general_line)
        item.getViewBox().sigResized.connect(self._match_general_box)
        # The legend is a line of text above the plot, not inside it: inside, it sat on the curves.
        self.legend = QLabel(LEGEND_HTML)
        self.legend.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.legend.setContentsMargins(0, 0, 10, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot)

    def _match_general_box(self) -> None:
        self.general_box.setGeometry(self.plot.getPlotItem().getViewBox().sceneBoundingRect())
        self.general_box.linkedViewChanged(self.plot.getPlotItem().getViewBox(), self.general_box.XAxis)

    def shown_data(self) -> dict[str, list]:
        """What is on the axes right now: the arrays the curves were last drawn from."""
        train_x, train_y = self.train_line.getData()
        val_x, val_y = self.val_line.getData()
        best = self.best_marker.data
        return {"train_steps": [] if train_x is None else list(train_x),
                "train_losses": [] if train_y is None else list(train_y),
                "val_steps": [] if val_x is None else list(val_x),
                "val_losses": [] if val_y is None else list(val_y),
                "best": [(float(p["x"]), float(p["y"])) for p in best],
                "general": list(zip(*(list(v) for v in self.general_line.getData())))
                if self.general_line.getData()[0] is not None else []}

    def _draw(self) -> None:
        curves = self._curves
        self.train_line.setData(list(curves.train_steps), list(curves.train_losses))
        self.val_line.setData(list(curves.val_steps), list(curves.val_losses))
        self.general_line.setData(list(curves.general_steps), [100 * a for a in curves.general_accuracy])
        self._fit_axes(curves)
        if curves.best_step is not None and curves.best_val_loss is not None:
            self.best_marker.setData([curves.best_step], [curves.best_val_loss])
            self.best_label.setText(f"best: step {curves.best_step}")
            self.best_label.setPos(curves.best_step, curves.best_val_loss)
            self.best_label.setAnchor(self._label_anchor(curves.best_step, curves.best_val_loss))
            self.best_label.setVisible(True)
        else:
            self.best_marker.setData([], [])
            self.best_label.setVisible(False)

    def _label_anchor(self, x: float, y: float) -> tuple[float, float]:
        """Where the "best: step N" label hangs from its point so that it stays inside the plot:
        above the star, or below it near the top; centred, or to one side near the left or right edge."""
        (x_low, x_high), (y_low, y_high) = self.plot.getViewBox().viewRange()
        across = (x - x_low) / max(1e-12, x_high - x_low)
        up = (y - y_low) / max(1e-12, y_high - y_low)
        horizontal = 1.0 if across > 0.8 else 0.0 if across < 0.12 else 0.5
        return (horizontal, -0.6 if up > 0.8 else 1.6)

    def _fit_axes(self, curves: TrainingCurves) -> None:
        """x: the whole run (0..total steps) from the start; y: refit only when the losses leave the
        view or fill less than half of it, so most redraws leave both axes untouched."""
        steps = curves.train_steps[-1:] + curves.val_steps[-1:] + curves.general_steps[-1:]
        x_max = max([curves.total_steps, 1] + steps)
        (x_low, x_high), (y_low, y_high) = self.plot.getViewBox().viewRange()
        if abs(x_high - x_max * 1.02) > 1e-9 or x_low != 0:
            self.plot.setXRange(0, x_max * 1.02, padding=0)
        losses = [loss for loss in curves.train_losses + curves.val_losses if loss == loss]  # drop NaN
        if not losses:
            return
        low, high = min(losses), max(losses)
        # A single point (or a flat curve) still gets an axis a person can read: at least 10 % of the
        # loss itself, not 3.46190..3.46200.
        span = max(high - low, 0.1 * abs(high), 1e-3)
        middle = (low + high) / 2
        low, high = min(low, middle - span / 2), max(high, middle + span / 2)
        outside = low < y_low or high > y_high
        too_loose = (high - low) < 0.5 * (y_high - y_low)
        if outside or too_loose:
            self.plot.setYRange(low - 0.08 * span, high + HEADROOM * span, padding=0)
