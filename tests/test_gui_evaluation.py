"""The Evaluation tab with fake chat and eval workers in real child processes (tests/fake_worker.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from gui import style
from gui.controller import Controller
from gui.views.evaluation_view import EvaluationView
from gui.widgets.before_after import ROWS

VAL = [{"row": 7, "messages": [{"role": "system", "content": "Answer briefly."},
                               {"role": "user", "content": "What is the capital of France?"},
                               {"role": "assistant", "content": "Paris."}]},
       {"row": 9, "text": "plain text rows have no question and are skipped"}]


@pytest.fixture
def run_dir(tunesmith_home) -> Path:
    """A finished run folder as the engine leaves it (without real weights: the workers are fakes)."""
    folder = tunesmith_home / "runs" / "2026-11-22_1600_capitals"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    info = {"base_model_path": "/models/smollm2-135m-instruct", "method": "lora", "status": "completed",
            "best_step": 20, "created": "2026-11-22 16:00:00"}
    (folder / "run-info.json").write_text(json.dumps(info), encoding="utf-8")
    (folder / "test.jsonl").write_text("\n".join(json.dumps(e) for e in VAL) + "\n", encoding="utf-8")
    (folder / "val.jsonl").write_text(json.dumps({"row": 2, "text": "validation rows are not offered"}) + "\n",
                                      encoding="utf-8")
    return folder


@pytest.fixture
def view(qapp, qtbot, run_dir, screenshots):
    widget = EvaluationView(Controller(), chat_target="tests.fake_worker:fake_chat_main",
                            eval_target="tests.fake_worker:fake_eval_main")
    widget.resize(1280, 800)
    qtbot.addWidget(widget)
    style.apply(qapp)  # the window's own look, so the screenshots show what users see
    widget.show()
    widget.screenshots = screenshots
    yield widget
    widget.shutdown()


def open_and_wait(qtbot, view, run_dir):
    view.controller.select_run(str(run_dir))  # the newest run may be open already: the tab chooses it
    qtbot.waitUntil(lambda: view.session is not None and view.session.is_ready, timeout=20000)
    assert view.send_button.isEnabled()


def ask(qtbot, view, text):
    view.prompt.setPlainText(text)
    with qtbot.waitSignal(view.turnFinished, timeout=20000):
        assert view.send()


def test_both_panes_stream_the_same_conversation_over_several_turns(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    assert "smollm2-135m-instruct" in view.base_label.text()
    seen = []
    view.session.token.connect(lambda side, text: seen.append(side))
    ask(qtbot, view, "hello there")
    assert seen.index("tuned") > seen.count("base") - 1 and seen.count("base") > 1  # streamed, base first
    assert view.base_pane.answers == ["base heard: hello there (turn 1)"]
    assert view.tuned_pane.answers == ["tuned heard: hello there (turn 1)"]
    ask(qtbot, view, "and again")  # each side gets its own earlier reply back: turn 2
    assert view.tuned_pane.answers[-1] == "tuned heard: and again (turn 2)"
    assert "You:\nhello there" in view.base_pane.plain_text() and "tokens in" in view.base_pane.plain_text()
    view.tuned_pane.copy_button.click()
    assert QGuiApplication.clipboard().text() == view.tuned_pane.plain_text()
    view.clear_button.click()
    assert view.base_pane.plain_text() == "" and view.base_pane.answers == []


def test_stop_generating_ends_the_turn_and_chat_goes_on(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    view.prompt.setPlainText("tell me a long story about many many different things please")
    with qtbot.waitSignal(view.turnFinished, timeout=20000):
        view.send()
        qtbot.waitUntil(lambda: len(view.base_pane.current_answer().split()) >= 3, timeout=10000)
        assert view.stop_button.isEnabled() and not view.send_button.isEnabled()
        view.stop_button.click()
    partial = view.base_pane.answers[-1]
    assert partial.startswith("base heard:") and "(turn 1)" not in partial  # cut short
    assert "(stopped before answering)" in view.tuned_pane.plain_text()  # tuned never started
    assert view.send_button.isEnabled() and not view.stop_button.isEnabled()
    ask(qtbot, view, "short")
    assert view.base_pane.answers[-1] == "base heard: short (turn 2)"  # its partial answer is history
    assert view.tuned_pane.answers[-1] == "tuned heard: short (turn 1)"  # the unanswered question is not


def test_a_held_out_example_fills_the_prompt_and_shows_the_reference(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    assert view.try_held_out_example()
    assert view.prompt.toPlainText() == "What is the capital of France?"
    assert view.reference_pane.isVisible() and "Paris." in view.reference_pane.plain_text()
    assert "row 7" in view.reference_pane.plain_text()
    ask(qtbot, view, view.prompt.toPlainText())
    # The example's system message came along: the conversation had 2 earlier messages.
    assert view.tuned_pane.answers[-1] == "tuned heard: What is the capital of France? (turn 2)"
    view.grab().save(str(view.screenshots / "evaluation-fake.png"))


def test_a_failed_request_is_explained_and_the_session_survives(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    ask(qtbot, view, "please fail")
    assert "too long for this model" in view.chat_status.text()
    assert "too long for this model" in view.base_pane.plain_text()
    assert view.send_button.isEnabled()
    ask(qtbot, view, "hi")
    assert view.base_pane.answers[-1] == "base heard: hi (turn 1)"  # the failed question left no trace


def test_run_evaluation_shows_progress_then_the_before_after_numbers(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    panel = view.before_after
    assert "Not evaluated yet" in panel.status.text() and panel.cells["val_loss"][1].text() == "–"
    with qtbot.waitSignal(panel.evaluationFinished, timeout=20000):
        panel.run_button.click()
        assert panel.progress.isVisible() and panel.run_button.text() == "Stop evaluation"
    assert not panel.progress.isVisible() and panel.run_button.text() == "Run evaluation"
    assert panel.cells["val_loss"][0].text() == "2.500"
    assert panel.cells["val_loss"][1].text() == "1.500  (better)"
    assert panel.cells["exact_match"][1].text() == "50%  (better)"
    assert panel.cells["probe_accuracy"][1].text() == "76%  (worse)"
    assert panel.verdict.isVisible() and panel.verdict.text().startswith("Forgot:") and "ARC-Easy" in panel.verdict.text()
    assert "55.0% (47.7-62.1)" in panel.general_numbers.text() and "-11.1 points (-17.2 to -5.0)" in \
        panel.general_numbers.text()
    assert [row["task"] for row in panel.bars.rows] == ["arc_easy", "hellaswag", "bb_arithmetic"]
    assert panel.bars.isVisible() and panel.bars.height() >= 3 * 30
    assert panel.row_labels["val_loss"].text() == "Test loss"
    assert "Measured on 4 test examples that training never saw" in panel.status.text()
    qtbot.wait(50)  # let the layout take in the new texts, as it would on screen
    view.grab().save(str(view.screenshots / "evaluation-results-fake.png"))


def test_runs_evaluated_before_the_benchmark_still_show_their_verdict(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    panel = view.before_after
    with qtbot.waitSignal(panel.evaluationFinished, timeout=20000):
        panel.start_evaluation({"old_layout": True})
    assert "General ability kept: 95%" in panel.verdict.text() and not panel.bars.isVisible()


def test_the_general_ability_check_size_reaches_the_worker(qtbot, view, run_dir):
    open_and_wait(qtbot, view, run_dir)
    panel = view.before_after
    panel.benchmark_choice.setCurrentIndex(panel.benchmark_choice.findData("quick"))
    with qtbot.waitSignal(panel.evaluationFinished, timeout=20000):
        panel.start_evaluation()
    assert panel.last_options["benchmark"] == "quick"


def test_a_run_without_a_model_cannot_chat_and_says_so(qtbot, tunesmith_home):
    view = EvaluationView(Controller(), chat_target="tests.fake_worker:fake_chat_main")
    qtbot.addWidget(view)
    assert view.run_combo.count() == 0 and "No trained runs yet" in view.base_label.text()
    assert not view.send() and not view.held_out_button.isEnabled()


def test_the_chat_model_is_loaded_only_once_the_tab_is_shown(qtbot, run_dir):
    view = EvaluationView(Controller(), chat_target="tests.fake_worker:fake_chat_main")
    qtbot.addWidget(view)
    view.controller.select_run(str(run_dir))  # e.g. training just ended, the tab is not on screen
    assert view.session is None and view.run_combo.currentData() == str(run_dir)
    with qtbot.waitSignal(view.chatReady, timeout=20000):
        view.show()
    view.shutdown()
    assert view.session is None


def test_results_of_a_run_without_test_rows_say_they_come_from_validation(qtbot, run_dir):
    from gui.widgets.before_after import BeforeAfterPanel

    (run_dir / "eval").mkdir()
    older = {"run_dir": str(run_dir), "device": "cpu", "val_examples": 6, "created": "2026-11-20 10:00:00",
             "base": {"val_loss": 2.0}, "tuned": {"val_loss": 1.0}}  # saved before results had "heldout"
    (run_dir / "eval" / "results.json").write_text(json.dumps(older), encoding="utf-8")
    panel = BeforeAfterPanel()
    qtbot.addWidget(panel)
    panel.set_run(str(run_dir))
    assert panel.row_labels["val_loss"].text() == "Validation loss"
    assert "Measured on 6 validation examples" in panel.status.text() and "flatter" in panel.status.text()


def test_the_run_list_shows_the_newest_run_and_runs_trained_since(qtbot, run_dir, tunesmith_home):
    view = EvaluationView(Controller(), chat_target="tests.fake_worker:fake_chat_main")
    qtbot.addWidget(view)
    # Not an empty box although a run exists: the newest run is chosen (its model loads once the tab shows).
    assert view.run_combo.count() == 1 and view.run_combo.currentData() == str(run_dir)
    assert view.run_dir == str(run_dir) and view.session is None
    newer = tunesmith_home / "runs" / "2026-11-23_0900_newer"
    shutil.copytree(run_dir, newer)
    info = json.loads((newer / "run-info.json").read_text())
    (newer / "run-info.json").write_text(json.dumps(dict(info, created="2026-11-23 09:00:00")))
    with qtbot.waitSignal(view.chatReady, timeout=20000):
        view.show()  # the tab comes on screen: the run trained meanwhile is listed without Refresh
    assert view.run_combo.count() == 2 and view.run_combo.currentData() == str(run_dir)  # the choice is kept
    view.shutdown()


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_before_after_rows_never_overlap_under_a_long_verdict(qtbot, qapp, run_dir, size, screenshots):
    from tests.fake_worker import fake_eval_main

    fake_eval_main(str(run_dir), _Sink(), options={"old_layout": True})  # a verdict in words
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    results["forgetting"]["verdict"] = ("General ability kept: 41%. The tuned model forgot much of what it knew "
                                        "(catastrophic forgetting): it may now answer everything like your "
                                        "training data. Mix general data in, lower the learning rate, or train "
                                        "fewer epochs.")
    (run_dir / "eval" / "results.json").write_text(json.dumps(results))
    style.apply(qapp)
    from gui.main_window import MainWindow

    window = MainWindow(prepare_model=False, restore=False)
    qtbot.addWidget(window)
    view = window.evaluation_view
    view._start_session = lambda: None  # only the layout matters here
    window.resize(*size)
    window.tabs.setCurrentIndex(3)
    window.show()
    qtbot.waitExposed(window)
    view.open_run(str(run_dir))
    view.base_label.setText("Base: smollm2-135m-instruct (the model 2026-11-26_0812_customer-orders-sample "
                            "started from) · method lora · a run line long enough to take two lines")
    qtbot.wait(100)
    panel = view.before_after
    rows = [panel.cells[key][0] for _, key, *_ in ROWS]
    for cell in rows:
        assert cell.height() >= cell.sizeHint().height(), cell.text()
    for upper, lower in zip(rows, rows[1:]):
        assert upper.geometry().bottom() < lower.geometry().top(), (upper.text(), lower.text())
    assert panel.verdict.height() >= panel.verdict.heightForWidth(panel.verdict.width())
    window.grab().save(str(screenshots / f"evaluation-{size[0]}x{size[1]}-fake.png"))


def test_run_evaluation_is_in_sight_in_a_small_window_with_the_benchmark_bars(qtbot, qapp, run_dir):
    from tests.fake_worker import fake_eval_main

    fake_eval_main(str(run_dir), _Sink())  # before/after, general ability with its bars, a verdict
    style.apply(qapp)
    from gui.main_window import MainWindow

    window = MainWindow(prepare_model=False, restore=False)
    qtbot.addWidget(window)
    view = window.evaluation_view
    view._start_session = lambda: None  # only the layout matters here
    window.resize(1280, 800)
    window.tabs.setCurrentIndex(3)
    window.show()
    qtbot.waitExposed(window)
    view.open_run(str(run_dir))
    qtbot.wait(100)
    panel = view.before_after
    assert panel.bars.isVisible()
    side = panel.parentWidget().parentWidget()  # the side column's scroll viewport
    corner = panel.run_button.mapTo(side, panel.run_button.rect().bottomRight())
    assert side.rect().contains(corner), (corner, side.rect())  # no scrolling needed to find the button


class _Sink:
    def put(self, event) -> None:
        pass
