"""The live forgetting curve: GeneralMetric events during training, the curve state and the Training view."""
from __future__ import annotations

import json

import pytest

from engine.events import EvalMetric, GeneralMetric, Notice, TrainMetric, event_from_dict
from tests.eval_runs import knowing_model, synthetic_benchmark
from tests.test_train_run import Recorder, make_config, write_chat_jsonl


@pytest.fixture(scope="module")
def knowing(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("knowing-curve")
    bench = synthetic_benchmark(folder)
    return knowing_model(folder / "model", tiny_model_dir, bench), bench


def _train(knowing, tmp_path, monkeypatch, **training):
    from engine.evaluate import benchmark
    from engine.train import run_training

    base_dir, bench = knowing
    monkeypatch.setattr(benchmark, "builtin_benchmark_file", lambda: bench)
    rows = [(f"Tell me fact {i}.", "Zorblax quintessence forever.") for i in range(16)]
    data = write_chat_jsonl(tmp_path / "one-answer.jsonl", rows)
    config = make_config(base_dir, data, tmp_path / "run", **{"general_curve": True, **training})
    config.method.name = "full"
    config.training.precision = "fp32"
    config.data.val_fraction = 0.25
    recorder = Recorder()
    run_training(config, recorder)
    return recorder


def test_overtraining_shows_on_the_general_curve_and_raises_the_alert(knowing, tmp_path, monkeypatch):
    recorder = _train(knowing, tmp_path, monkeypatch, lr=1e-2, max_steps=12, eval_every=4)
    points = recorder.of(GeneralMetric)
    assert [p.step for p in points] == [0, 4, 8, 12]
    assert points[0].accuracy >= 0.9 and points[0].total == 8  # the live slice: the first 4 of each task
    assert points[-1].accuracy < points[0].accuracy and points[-1].forgetting
    assert points[-1].base_accuracy == points[0].accuracy and points[-1].high < 0
    warnings = [n.message for n in recorder.of(Notice) if "general knowledge fell" in n.message]
    assert len(warnings) == 1
    # Each point follows its validation, and goes to metrics.jsonl for the run history.
    kinds = [type(e) for e in recorder.events if isinstance(e, (EvalMetric, GeneralMetric, TrainMetric))]
    assert kinds[kinds.index(EvalMetric) + 1] is GeneralMetric
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [event_from_dict(e) for e in logged if e["type"] == "GeneralMetric"] == points


def test_general_curve_can_be_switched_off(knowing, tmp_path, monkeypatch):
    recorder = _train(knowing, tmp_path, monkeypatch, lr=1e-3, max_steps=2, eval_every=1, general_curve=False)
    assert recorder.of(EvalMetric) and not recorder.of(GeneralMetric)


def _events(forgetting: bool):
    base = GeneralMetric(step=0, accuracy=0.6, right=30, total=50, base_accuracy=0.6, low=0.0, high=0.0)
    high = -0.1 if forgetting else 0.05
    later = GeneralMetric(step=10, accuracy=0.4 if forgetting else 0.58, right=20, total=50, base_accuracy=0.6,
                          low=-0.3, high=high, seconds=0.8)
    return [TrainMetric(step=s, loss=2.0 - s / 20, lr=1e-4, grad_norm=1.0, tokens_per_s=100.0) for s in range(1, 11)] + \
        [EvalMetric(step=10, val_loss=1.6, best_step=10, best_val_loss=1.6), base, later]


def test_curves_and_log_lines_follow_general_metrics():
    from gui.training_curves import TrainingCurves, describe_event

    curves = TrainingCurves.from_events(_events(forgetting=True))
    assert curves.general_steps == [0, 10] and curves.general_accuracy == [0.6, 0.4] and curves.forgetting
    assert not TrainingCurves.from_events(_events(forgetting=False)).forgetting
    assert curves.until(5).general_steps == [0]
    assert "before training: 60%" in describe_event(_events(True)[-2])
    assert "general knowledge 40%, -20 points since the start (95% interval -30 to -10)" in describe_event(
        _events(True)[-1])


def test_training_view_draws_general_knowledge_and_the_forgetting_alert(qtbot, tmp_path):
    from gui.controller import Controller
    from gui.views.training_view import TrainingView

    view = TrainingView(Controller())
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    for event in _events(forgetting=True):
        view.curves.apply(event)
    view.plot.set_curves(view.curves)
    view.plot.redraw_now()
    view._refresh_progress(force=True)
    assert view.plot.shown_data()["general"] == [(0.0, 60.0), (10.0, 40.0)]
    assert view.forgetting_alert.isVisible() and "forgetting" in view.forgetting_alert.text()
    view.grab().save(str(tmp_path / "training-forgetting.png"))
