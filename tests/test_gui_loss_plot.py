"""The loss plot stays readable: legend off the curves, the best-step label inside, a sane axis for one point."""
from __future__ import annotations

import pytest

from gui import style
from gui.training_curves import TrainingCurves
from gui.widgets.loss_plot import LossPlot


def _plot(qtbot, qapp, curves: TrainingCurves, size=(640, 300)) -> LossPlot:
    style.apply(qapp)
    plot = LossPlot()
    plot.resize(*size)
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    plot.set_curves(curves)
    plot.redraw_now()
    qapp.processEvents()
    return plot


def _inside_view(plot: LossPlot, item) -> bool:
    view = plot.plot.getViewBox().sceneBoundingRect()
    return view.contains(item.sceneBoundingRect())


def test_a_single_validation_point_gets_a_readable_axis(qtbot, qapp):
    curves = TrainingCurves(train_steps=[1], train_losses=[3.4619], val_steps=[1], val_losses=[3.4619],
                            best_step=1, best_val_loss=3.4619, step=1, total_steps=1)
    plot = _plot(qtbot, qapp, curves)
    (_, _), (low, high) = plot.plot.getViewBox().viewRange()
    assert low < 3.4619 < high
    assert high - low > 0.3  # about 10 % of the loss, not 0.0001
    assert _inside_view(plot, plot.best_label)


@pytest.mark.parametrize("best_at_top", [False, True])
def test_the_legend_is_off_the_curves_and_the_best_label_stays_inside(qtbot, qapp, best_at_top, screenshots):
    steps = list(range(1, 31))
    train = [3.0 - 0.08 * s for s in steps]
    # Validation far above training (best point at the top of the view), or falling with training.
    val = [3.6 - 0.001 * s for s in steps[4::5]] if best_at_top else [3.1 - 0.07 * s for s in steps[4::5]]
    best = min(range(len(val)), key=val.__getitem__)
    curves = TrainingCurves(train_steps=steps, train_losses=train, val_steps=steps[4::5], val_losses=val,
                            best_step=steps[4::5][best], best_val_loss=val[best], step=30, total_steps=30)
    plot = _plot(qtbot, qapp, curves)
    assert plot.plot.getPlotItem().legend is None  # not drawn over the curves
    assert plot.legend.isVisible() and "Validation loss" in plot.legend.text()
    assert "General knowledge (right axis)" in plot.legend.text()  # the purple line is named too
    assert plot.legend.geometry().bottom() <= plot.plot.geometry().top()
    assert plot.best_label.isVisible() and _inside_view(plot, plot.best_label), plot.best_label.sceneBoundingRect()
    plot.grab().save(str(screenshots / f"loss-plot-{best_at_top}.png"))
