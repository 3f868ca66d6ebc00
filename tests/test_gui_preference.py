"""Preference tuning in the window: the objective choice, the pair preview, the curves and the results."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.events import PreferenceMetric
from gui.controller import Controller
from tests.preference_data import write_preference_file

WAIT_MS = 20000
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def controller(tiny_model_dir):
    controller = Controller(RunConfig())
    controller.set_model_dir(str(tiny_model_dir))
    return controller


def test_method_view_offers_the_objectives_with_a_sentence_each(qtbot, controller):
    from gui.views.method_view import MethodView
    from gui.widgets.objective_choice import OBJECTIVES

    view = MethodView(controller)
    qtbot.addWidget(view)
    view.show()
    assert set(view.objective.buttons) == set(OBJECTIVES) == {"sft", "dpo", "orpo"}
    assert not view.form.editors["training.beta"].isVisible()
    view.objective.buttons["dpo"].setChecked(True)
    assert controller.config.training.objective == "dpo"
    assert view.form.editors["training.beta"].isVisible() and controller.config.training.beta == 0.1
    assert not view.objective.note.isVisible()  # no data chosen yet: nothing to say
    from engine.data.inspect import inspect_file
    from gui.state import SAMPLE_DATASET

    controller.set_report(inspect_file(SAMPLE_DATASET))
    assert view.objective.note.isVisible() and "learn from pairs" in view.objective.note.text()
    controller.set_value("training.objective", "sft")
    assert view.objective.selected() == "sft" and not view.objective.note.isVisible()


def test_dataset_view_previews_a_pair_and_the_length_difference(qtbot, controller, tmp_path):
    from gui.views.dataset_view import DatasetView

    view = DatasetView(controller)
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.open_file(str(write_preference_file(tmp_path / "pairs.jsonl", 12)))
    assert controller.report.format == "preference"
    assert controller.config.training.objective == "dpo"  # pairs: preference tuning is the natural choice
    qtbot.waitUntil(lambda: view.pair_preview.preview is not None, timeout=WAIT_MS)
    pair = controller.report.examples[0]
    preview = view.pair_preview
    assert preview.isVisible() and not view.preview.isVisible()
    assert pair.prompt[-1]["content"] in preview.prompt.toPlainText()
    assert pair.chosen in preview.answers["chosen"].toPlainText()
    assert pair.rejected in preview.answers["rejected"].toPlainText()
    assert preview.titles["chosen"].text() == f"Chosen · {preview.preview.chosen_tokens} tokens"
    qtbot.waitUntil(lambda: bool(view.pair_chart.differences), timeout=WAIT_MS)
    assert len(view.pair_chart.differences) == 12 and view.pair_chart_card.isVisible()
    assert "The chosen answer is longer in" in view.pair_chart.summary.text()
    # The plan prices a pair as the two sequences it trains on; the histogram shows prompt + chosen.
    assert len(controller.lengths) == len(controller.pair_answers) == 12
    # A plain dataset switches back: single examples, SFT.
    from gui.state import SAMPLE_DATASET

    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.open_file(str(SAMPLE_DATASET))
    assert controller.config.training.objective == "sft" and not view.pair_chart_card.isVisible()


def test_a_pair_trains_as_two_sequences_each_cut_to_max_length():
    from engine.train.autoplan import pair_lengths

    # prompt + chosen measured 50 and 80 tokens; the rejected answers are 5 and 60 tokens against 20 and 30
    assert pair_lengths([50, 80], [(20, 5), (30, 60)], 512) == [50 + 35, 80 + 110]
    assert pair_lengths([50, 800], [(20, 5), (30, 60)], 100) == [50 + 35, 100 + 100]


def metric(step, split, accuracy, margin, preferred=20.0):
    return PreferenceMetric(step=step, split=split, pairs=8, loss=0.6, accuracy=accuracy, reward_margin=margin,
                            chosen_reward=margin / 2, rejected_reward=-margin / 2, preferred_length=preferred,
                            chosen_length=18.0)


def test_training_view_draws_the_preference_curves(qtbot, controller):
    from gui.views.training_view import TrainingView

    view = TrainingView(controller)
    qtbot.addWidget(view)
    view.show()
    assert not view.preference_card.isVisible()
    for step in range(1, 5):
        view._on_event(metric(step, "train", 0.5, 0.1 * step))
    view._on_event(metric(4, "val", 0.75, 0.3, preferred=25.0))
    view.preference_plot.redraw_now()
    shown = view.preference_plot.shown_data()
    assert view.preference_card.isVisible()
    assert shown["train_margin"] == pytest.approx([0.1, 0.2, 0.3, 0.4]) and shown["accuracy"] == [75.0]
    assert shown["preferred_length"] == [25.0] and shown["chosen_length"] == [18.0]
    assert "the chosen answer wins in 75% of 8 validation pairs" in view.log.toPlainText()


def test_evaluation_view_shows_the_preference_results_and_the_guard(qtbot, controller):
    from gui.widgets.preference_results import PreferenceResults

    panel = PreferenceResults()
    qtbot.addWidget(panel)
    panel.show_results({"base": {}})
    assert not panel.isVisible()
    section = {"pairs": 30, "base": {"accuracy": 0.5, "accuracy_per_token": 0.4, "margin": -3.0, "mean_length": 60.0},
               "tuned": {"accuracy": 0.53, "accuracy_per_token": 0.5, "margin": -1.0, "mean_length": 150.0,
                         "reward_accuracy": 0.6, "reward_margin": 0.2},
               "verdict": "... verbose without substance ...", "verbose_without_substance": True,
               "examples": [{"row": 4, "prompt": "Why?", "base": "Because.", "tuned": "Well, " * 40,
                             "base_tokens": 2, "tuned_tokens": 80}]}
    panel.show()
    panel.show_results({"preference": section})
    assert panel.isVisible()
    assert [panel.cells["accuracy"][i].text() for i in (0, 1)] == ["50%", "53%"]
    assert panel.cells["reward_accuracy"][0].text() == "" and panel.cells["reward_accuracy"][1].text() == "60%"
    assert panel.cells["mean_length"][1].text() == "150" and panel.verdict.property("role") == "warning"
    dialog = panel.show_answers()
    qtbot.addWidget(dialog)
    assert "Tuned · 80 tokens" in [w.text() for w in dialog.findChildren(type(panel.verdict))]
