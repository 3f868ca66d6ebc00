"""The Method view's training plan: automatic or own settings, the explanation, time, keep general ability."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import paths
from engine.data.inspect import inspect_file
from engine.train import timing
from gui.controller import Controller
from gui.state import default_config
from gui.views.method_view import PLANNED_KEYS, MethodView
from tests.fake_worker import FAKE_RATE

WAIT_MS = 30000


@pytest.fixture
def view(qtbot, tiny_model_dir, tmp_path):
    data = tmp_path / "secret.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?", "completion": "pineapple"}) + "\n"
                            for i in range(16)))
    config = default_config()
    config.model.name, config.data.path = str(tiny_model_dir), str(data)
    controller = Controller(config)
    widget = MethodView(controller)
    qtbot.addWidget(widget)
    widget.resize(1280, 800)
    widget.show()
    controller.set_model_dir(tiny_model_dir)
    controller.set_report(inspect_file(data))
    controller.set_lengths([30] * 16)
    # the memory estimates (per method, for the recommendation) come from a pool thread: let them land
    qtbot.waitUntil(lambda: widget.hardware.last_estimate is not None, timeout=WAIT_MS)
    widget.plan.refresh()
    yield widget
    qtbot.waitUntil(lambda: not widget.hardware._estimate_job.running, timeout=WAIT_MS)


def test_the_plan_explains_itself_and_own_settings_show_the_planned_fields(view):
    plan, controller = view.plan, view.controller
    assert plan.auto_button.isChecked() and plan.plan.steps == 64
    assert plan.plan.method == "lora" and "fits this computer" in plan.method_note.text()
    assert "64 steps of 4 examples" in plan.explanation.text() and "at least 64" in plan.explanation.text()
    assert not any(view.form.editors[key].isVisible() for key in PLANNED_KEYS)
    plan.custom_button.click()
    assert controller.config.training.plan == "custom"
    assert all(view.form.editors[key].isVisible() for key in PLANNED_KEYS)
    plan.refresh()
    assert plan.explanation.text().startswith("Your settings: 6 steps of 8 examples")
    assert "at least 64" in plan.warnings.text() and plan.warnings.isVisible()
    plan.auto_button.click()
    assert controller.config.training.plan == "auto"


def test_preference_pairs_get_their_own_plan_priced_as_two_sequences_each(view):
    plan, controller = view.plan, view.controller
    controller.set_value("training.objective", "dpo")
    controller.set_lengths([300] * 16, [(100, 40)] * 16)  # prompt + chosen 300 tokens; rejected 60 shorter
    controller.set_value("data.max_length", 256)
    plan.refresh()
    assert plan.plan.steps == 32 and "pairs" in plan.explanation.text()
    assert not plan.keep.isChecked() and not plan.keep.isEnabled() and "Not used" in plan.keep_note.text()
    assert plan.inputs().lengths == (256 + 240,) * 16  # each side cut to max_length, as training cuts it


def test_keep_general_ability_is_on_for_small_data_and_can_be_turned_off(view):
    plan, controller = view.plan, view.controller
    assert plan.keep.isChecked() and "small set" in plan.keep_note.text()
    plan.keep.click()
    assert controller.config.training.keep_general == "off"
    plan.refresh()
    assert not plan.keep.isChecked() and "as asked" in plan.keep_note.text()


def test_time_comes_from_the_stored_rates_or_a_calibration_in_a_child(view, qtbot, monkeypatch):
    plan = view.plan
    assert "measured when training starts" in plan.time.text()  # TUNESMITH_CALIBRATE=0 in tests
    monkeypatch.setenv("TUNESMITH_CALIBRATE", "1")
    plan.calibrate_target = "tests.fake_worker:calibrate_main"
    with qtbot.waitSignal(plan.planChanged, timeout=WAIT_MS, check_params_cb=lambda p: plan.estimate is not None):
        plan.refresh()
        assert "Measuring how fast" in plan.time.text()
    rate = timing.Throughput.from_dict(FAKE_RATE)
    key = timing.throughput_key(view.controller.config, view.controller.model_dir, "cpu")
    assert timing.load_throughput(paths.data_dir(), key) == rate
    assert plan.time.text() == f"Time on this computer: {timing.format_duration(plan.estimate.total_s)}."
    assert plan.estimate.answers_s > 0  # the first run with this model writes its general answers
    assert "adds" in plan.keep_note.text() and "once" in plan.keep_note.text()


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_every_sentence_in_the_right_column_is_whole_and_the_settings_list_scrolls(qtbot, qapp, tiny_model_dir,
                                                                                  tmp_path, size):
    """At 1280x800 the column once cut the plan's sentences (first line gone, the last under the time) while
    the settings list kept its full height: its card's word-wrapped title made it hold that height."""
    from PySide6.QtWidgets import QLabel, QScrollArea

    from gui import style
    from gui.main_window import TAB_NAMES, MainWindow
    from gui.widgets.card import Card

    data = tmp_path / "orders.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Order {i}?", "completion": "one blue mug"}) + "\n"
                            for i in range(600)))
    config = default_config()
    config.model.name, config.data.path = str(tiny_model_dir), str(data)
    style.apply(qapp)  # the window's own fonts and margins: the heights depend on them
    window = MainWindow(Controller(config), prepare_model=False, restore=False, offer_menu_entry=False)
    qtbot.addWidget(window)
    view, controller = window.method_view, window.controller
    controller.set_model_dir(tiny_model_dir)  # the Dataset tab reads the file and measures its lengths
    window.resize(*size)
    window.tabs.setCurrentIndex(TAB_NAMES.index("Method"))
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: view.hardware.last_estimate is not None, timeout=WAIT_MS)
    cards = {card.title.text(): card for card in view.findChildren(Card)}
    settings = cards["Settings"].findChild(QScrollArea)
    plan = view.plan
    for objective in ("sft", "dpo", "orpo"):
        view.objective.buttons[objective].click()
        key = timing.throughput_key(controller.config, str(tiny_model_dir), "cpu")  # one per objective
        timing.save_throughput(paths.data_dir(), key, timing.Throughput.from_dict(FAKE_RATE))  # time and notes
        plan.refresh()
        qtbot.waitUntil(lambda: plan.estimate is not None and not window.dataset_view._lengths_job.running,
                        timeout=WAIT_MS)
        qtbot.wait(50)  # the layouts settle
        for title in ("What to teach", "Training plan"):
            for text in cards[title].findChildren(QLabel):
                if text.isVisible() and text.wordWrap():
                    assert text.height() >= text.heightForWidth(text.width()), (objective, text.text())
        assert plan.explanation.geometry().bottom() < plan.time.geometry().top()
        assert plan.time.geometry().bottom() < plan.keep.geometry().top()
        if size == (1280, 800):  # the list gives up the height instead: it scrolls
            assert settings.height() < settings.widget().sizeHint().height()
    qtbot.waitUntil(lambda: not view.hardware._estimate_job.running, timeout=WAIT_MS)


def test_general_answers_left_from_an_older_prompt_set_still_count_as_to_write(view, qtbot):
    """The time counts the base model's general answers as written only where training would read them:
    their file is named after the model, its chat template and the prompt set (the engine's rule,
    autoplan.answers_missing), so after an update of the prompts the older file is no help."""
    from engine.templates import load_tokenizer
    from engine.train import autoplan
    from engine.train import keep_general as kg

    plan, controller = view.plan, view.controller
    model_dir, template = str(controller.model_dir), controller.config.model.template
    key = timing.throughput_key(controller.config, model_dir, "cpu")
    timing.save_throughput(paths.data_dir(), key, timing.Throughput.from_dict(FAKE_RATE))
    tokenizer = load_tokenizer(model_dir, template)
    answers = kg.cache_path(Path(model_dir), tokenizer, kg.load_prompts())
    older = answers.with_name(f"{Path(model_dir).name}-{'0' * 16}.jsonl")  # an earlier prompt set's answers
    older.write_text(json.dumps({"prompt": "Hello?", "answer": "Hello."}) + "\n")

    def answers_s() -> float:
        plan.refresh()
        qtbot.waitUntil(lambda: not plan._answers_job.running, timeout=WAIT_MS)  # the helper has counted
        return plan.estimate.answers_s

    assert autoplan.answers_missing(model_dir, tokenizer) == len(kg.load_prompts())
    assert answers_s() > 0 and "once" in plan.keep_note.text()
    answers.write_text(older.read_text())  # a run wrote this prompt set's answers
    assert autoplan.answers_missing(model_dir, tokenizer) == 0
    assert answers_s() == 0 and "once" not in plan.keep_note.text()
