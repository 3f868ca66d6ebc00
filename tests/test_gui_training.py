"""The Training tab driven by a fake worker in a real child process (tests/fake_worker.py)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMainWindow

from engine.config import RunConfig
from engine.events import (CheckpointSaved, EvalMetric, Failed, Finished, FirstLoss, GeneralMetric, Notice, Progress,
                           Started, TrainMetric)
from gui import runs, style
from gui.controller import Controller
from gui.lag_probe import LagProbe
from gui.training_curves import TrainingCurves, overfitting
from gui.views.evaluation_view import EvaluationView
from gui.views.training_view import CloseChoice, TrainingView
from tests.fake_worker import SCRIPT_ENV

FAKE_TRAIN = "tests.fake_worker:fake_train_main"


def val_loss_at(step: int) -> float:
    """Falls until step 15, then rises: the shape of overfitting."""
    return 2.0 - 0.05 * step if step <= 15 else 1.25 + 0.04 * (step - 15)


def training_script(run_dir: Path, steps: int = 30, pause: float = 0.01, end: str = "until_stop"):
    """Started, FirstLoss, then per step Progress + TrainMetric, an evaluation and checkpoint every 5 steps."""
    script = [("print", "loading the tiny model"),
              ("event", Started(run_dir=str(run_dir), method="lora", device="cpu", trainable_params=1000,
                                total_params=100000, train_examples=90, val_examples=10, total_steps=steps)),
              ("event", FirstLoss(step=0, loss=3.05)),
              ("event", GeneralMetric(step=0, accuracy=0.54, right=15, total=28, base_accuracy=0.54, low=0.0,
                                      high=0.0, seconds=3.1))]
    best_step, best = 0, float("inf")
    for step in range(1, steps + 1):
        script.append(("event", Progress(step=step, total_steps=steps, epoch=step / 10, elapsed_s=step * 0.5,
                                         eta_s=(steps - step) * 0.5)))
        script.append(("event", TrainMetric(step=step, loss=3.0 - 0.06 * step, lr=2e-4, grad_norm=1.0,
                                            tokens_per_s=1234.0)))
        if step % 5 == 0:
            loss = val_loss_at(step)
            if loss < best:
                best_step, best = step, loss
            script.append(("event", EvalMetric(step=step, val_loss=loss, best_step=best_step, best_val_loss=best)))
            right = 15 - step // 10  # general knowledge slips a little, within noise
            script.append(("event", GeneralMetric(step=step, accuracy=right / 28, right=right, total=28,
                                                  base_accuracy=0.54, low=-0.12, high=0.03, seconds=3.0)))
            script.append(("event", CheckpointSaved(step=step, path=str(run_dir / "checkpoints" / f"step-{step:06d}"))))
        script.append(("sleep", pause))
    finished = Finished(run_dir=str(run_dir), output_path=str(run_dir / "adapter"), reason="stopped", step=steps,
                        best_step=best_step, best_val_loss=best)
    script.append((end, finished))
    return script


@pytest.fixture
def view(qapp, qtbot, tunesmith_home, monkeypatch, tmp_path, screenshots):
    """A TrainingView whose Start launches the fake worker with the script written by `use_script`."""
    config = RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.data.path = str(tmp_path / "data.jsonl")
    config.out = str(tunesmith_home / "runs" / "2026-11-22_1530_fake")
    controller = Controller(config)
    widget = TrainingView(controller, train_target=FAKE_TRAIN)
    widget.resize(1180, 760)
    qtbot.addWidget(widget)
    style.apply(qapp)  # the window's own look, so the screenshots show what users see
    widget.show()
    widget.run_dir = Path(config.out)
    widget.screenshots = screenshots

    def use_script(script):
        path = tmp_path / "script.pickle"
        path.write_bytes(pickle.dumps(script))
        monkeypatch.setenv(SCRIPT_ENV, str(path))

    widget.use_script = use_script
    yield widget
    if widget.host is not None:  # never leave a child behind
        widget.host.kill_now()
        widget.host.wait(10000)


def test_full_path_curves_grow_best_marker_moves_stop_keeps_the_run(qtbot, view):
    view.use_script(training_script(view.run_dir))
    selected = []
    view.controller.runSelected.connect(selected.append)
    assert view.start_training()
    best_positions, sizes = [], []

    def caught_up():
        view.plot.redraw_now()
        shown = view.plot.shown_data()
        sizes.append(len(shown["train_steps"]))
        if shown["best"] and shown["best"][-1] not in best_positions:
            best_positions.append(shown["best"][-1])
        assert len(shown["train_steps"]) == 31 and len(shown["val_steps"]) == 6  # step 0: the first loss

    qtbot.waitUntil(caught_up, timeout=20000)
    assert sizes == sorted(sizes) and sizes[0] < 31  # the arrays grew while the worker ran
    assert len(best_positions) >= 2 and best_positions[-1] == (15.0, pytest.approx(1.25))  # the marker moved
    view._refresh_progress(force=True)
    assert view.overfit_alert.isVisible() and "memorise" in view.overfit_alert.text()
    assert "Step 30 of 30" in view.progress_label.text() and "1,234 tokens/s" in view.progress_label.text()
    assert view.host is not None and view.stop_button.isEnabled()
    view.grab().save(str(view.screenshots / "training-fake.png"))

    with qtbot.waitSignal(view.trainingEnded, timeout=20000) as ended:
        view.stop_button.click()
    outcome = ended.args[0]
    assert isinstance(outcome, Finished) and outcome.reason == "stopped"
    assert view.start_button.isEnabled() and not view.error_card.isVisible()
    assert "what was learned is kept" in view.log.toPlainText()
    assert "loading the tiny model" in view.log.toPlainText()  # the child's own output reached the log pane
    assert selected == [str(view.run_dir)]
    assert view.history.current_run() == str(view.run_dir)
    assert "stopped (kept)" in view.history.list.currentItem().text()
    assert view.history.checkpoints.count() == 6 and view.history.chat_button.isEnabled()


def test_a_crash_shows_the_log_tail_and_the_window_survives_with_its_checkpoints(qtbot, view):
    script = training_script(view.run_dir, steps=10, pause=0.0, end="sleep")[:-1]
    script += [("print", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"), ("kill_self", None)]
    view.use_script(script)
    with qtbot.waitSignal(view.trainingEnded, timeout=20000) as ended:
        view.start_training()
    outcome = ended.args[0]
    assert isinstance(outcome, Failed) and "killed" in outcome.reason
    assert view.error_card.isVisible() and view.error_log.isVisible()
    assert "ran out of memory" in view.error_message.text()
    assert "CUDA out of memory" in view.error_log.toPlainText()
    view.grab().save(str(view.screenshots / "training-crash-fake.png"))
    # The window lives on: its checkpoints are listed, and training can start again.
    assert view.start_button.isEnabled() and not view.is_training
    assert [view.history.checkpoints.itemText(i) for i in range(view.history.checkpoints.count())] == \
        ["step-000010", "step-000005"]
    assert view.history.resume_button.isEnabled()
    # Killed before it could say so: the window marks the run folder failed, with the reason.
    assert "failed" in view.history.list.currentItem().text()
    info = json.loads((view.run_dir / "run-info.json").read_text())
    assert info["status"] == "failed" and "killed" in info["reason"]


def test_the_window_stays_responsive_while_a_worker_streams_events(qtbot, view):
    """~1,500 events in about 2 s; the 5 ms probe timer must keep firing on time."""
    view.use_script(training_script(view.run_dir, steps=400, pause=0.004, end="event"))
    probe = LagProbe()
    probe.start()
    with qtbot.waitSignal(view.trainingEnded, timeout=30000):
        view.start_training()
    probe.stop()
    lag = probe.report()
    print(f"\nevent-loop lag during a fake-worker run: {lag}")
    assert len(view.plot.shown_data()["train_steps"]) == 401  # the first loss and 400 steps
    # The window's own work (CPU time of the GUI thread, which other processes cannot inflate) must
    # leave most of the thread free. Lag targets are p99 <= 16 ms and max <= 100 ms on a quiet
    # machine; on a shared one the scheduler adds its own delays, so the bounds here only catch
    # real blocking (drawing once per event, a synchronous wait) rather than a busy neighbour.
    # Measured 35-42% alone and 52% once inside the full suite; drawing once per event keeps it near 100%.
    assert lag["busy_percent"] < 75
    assert lag["ticks"] > 100 and lag["p99_ms"] <= 150 and lag["max_ms"] <= 1000


def test_resume_starts_from_the_chosen_checkpoint_of_the_run(qtbot, view):
    view.use_script(training_script(view.run_dir, steps=10, pause=0.0, end="event"))
    with qtbot.waitSignal(view.trainingEnded, timeout=20000):
        view.start_training()
    (view.run_dir / "run.yaml").write_text(f"out: {view.run_dir}\ndata:\n  path: x.jsonl\n", encoding="utf-8")
    view.history.checkpoints.setCurrentIndex(1)  # step-000005; the newest (step-000010) is listed first
    full = training_script(view.run_dir, steps=10, pause=0.0, end="event")
    view.use_script([item for item in full if getattr(item[1], "step", 99) > 5])  # steps 6..10 only
    with qtbot.waitSignal(view.trainingEnded, timeout=20000):
        view.history.resume_button.click()
    # The curves go on from the checkpoint: steps 1-5 from the first attempt, 6-10 from the resumed one.
    assert view.curves.train_steps == list(range(0, 11)) and view.curves.val_steps == [5, 10]
    history = runs.load_curves(view.run_dir)  # metrics.jsonl holds both attempts; reading it gives the same
    assert history.train_steps == list(range(0, 11))
    info = (view.run_dir / "run-info.json").read_text()
    assert "step-000005" in info  # the worker got resume_from=<the checkpoint>
    assert "Resuming 2026-11-22_1530_fake from step-000005" in view.log.toPlainText()


def test_a_past_run_shows_its_curves_and_what_it_reported_in_the_log(qtbot, view):
    view.run_dir.mkdir(parents=True)
    events = [FirstLoss(step=0, loss=3.0), TrainMetric(step=1, loss=2.8, lr=2e-4, grad_norm=1.0, tokens_per_s=9.0),
              EvalMetric(step=1, val_loss=2.5, best_step=1, best_val_loss=2.5),
              Finished(run_dir=str(view.run_dir), output_path=str(view.run_dir / "adapter"), reason="completed",
                       step=1, best_step=1, best_val_loss=2.5)]
    (view.run_dir / "metrics.jsonl").write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    view.log.setPlainText("the log of another run")
    view.show_run(str(view.run_dir))
    assert view.curves.val_steps == [1] and view.curves.train_steps == [0, 1]
    log = view.log.toPlainText()
    assert log.startswith("2026-11-22_1530_fake, as it was reported while training:") and "another run" not in log
    assert "Step 1: validation loss 2.5000" in log and "Training finished at step 1" in log
    assert "Training finished at step 1" in view.progress_label.text()


def test_settings_that_cannot_be_used_are_explained_and_nothing_starts(qtbot, view):
    view.controller.config.data.path = ""
    assert not view.start_training()
    assert view.error_card.isVisible() and not view.error_log.isVisible()
    assert "No training data chosen" in view.error_message.text()
    assert view.host is None


def test_many_events_are_drawn_on_a_timer_not_one_by_one(qtbot, view):
    for step in range(1, 501):
        view._on_event(TrainMetric(step=step, loss=1.0, lr=1e-4, grad_norm=1.0, tokens_per_s=10.0))
    qtbot.wait(250)
    assert len(view.plot.shown_data()["train_steps"]) == 500
    assert 1 <= view.plot.redraws <= 4


@pytest.mark.parametrize("choice, closes", [(CloseChoice.CANCEL, False), (CloseChoice.STOP_AND_KEEP, True)])
def test_closing_the_window_during_training_asks_and_stop_waits_for_a_clean_end(qtbot, view, monkeypatch,
                                                                                  choice, closes):
    window = QMainWindow()  # the view guards the close of whatever window it is placed in
    qtbot.addWidget(window)
    window.setCentralWidget(view)
    window.show()
    view.use_script(training_script(view.run_dir, steps=5, pause=0.0))
    asked = []
    monkeypatch.setattr(view, "ask_close_choice", lambda: asked.append(1) or choice)
    view.start_training()
    qtbot.waitUntil(lambda: view.curves.step == 5, timeout=20000)
    assert window.close() is closes and asked == [1]
    if closes:  # the worker saved and ended before the window was allowed to close
        assert not view.is_training and isinstance(view.curves.outcome, Finished)
        assert "stopped" in (view.run_dir / "run-info.json").read_text()
    else:
        assert window.isVisible() and view.is_training and view.host.isRunning()


def test_keep_training_closes_the_window_and_the_worker_finishes_on_its_own(qtbot, view, monkeypatch):
    view.use_script(training_script(view.run_dir, steps=5, pause=0.0, end="event")[:-1]
                    + [("sleep", 1.0), training_script(view.run_dir, steps=5, end="event")[-1]])
    monkeypatch.setattr(view, "ask_close_choice", lambda: CloseChoice.KEEP_TRAINING)
    view.start_training()
    qtbot.waitUntil(lambda: view.curves.step == 5, timeout=20000)
    process = view.host._process
    assert view.confirm_close() and view.host is None and process.is_alive()
    process.join(20)  # nobody listens any more: its events go to the run folder only
    assert process.exitcode == 0
    assert "stopped" in (view.run_dir / "run-info.json").read_text()
    assert "Finished" in (view.run_dir / "metrics.jsonl").read_text()


def test_closing_without_training_does_not_ask(qtbot, view, monkeypatch):
    monkeypatch.setattr(view, "ask_close_choice", lambda: pytest.fail("asked although nothing was running"))
    assert view.confirm_close()


def test_overfitting_needs_rising_validation_while_training_falls():
    train = [(s, 3.0 - 0.05 * s) for s in range(1, 31)]
    val = [(s, val_loss_at(s)) for s in range(5, 31, 5)]
    assert overfitting(train, val)
    assert not overfitting(train, val[:4])  # one rise after the best is noise, not a trend
    flat_train = [(s, 1.0) for s in range(1, 31)]
    assert not overfitting(flat_train, val)  # both rising: a learning-rate problem, not memorising
    curves = TrainingCurves.from_events([Notice(message="x")])
    assert curves.progress_text() == "Preparing…" and not curves.overfitting


@pytest.mark.slow
def test_a_real_tiny_training_run_through_the_real_child_process(qtbot, qapp, tunesmith_home, tiny_model_dir, tmp_path):
    """engine.worker.train_main in a spawned child, on the tiny model: curves, outcome, run folder."""
    data = tmp_path / "capitals.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                          {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
            for a in range(6) for b in range(4)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    config = RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.model.name = str(tiny_model_dir)
    config.data.path = str(data)
    config.data.val_fraction = 0.2
    config.training.max_steps = 8
    config.training.batch_size = 4
    config.training.eval_every = 2
    config.training.threads = 1
    config.out = str(tunesmith_home / "runs" / "real-tiny")
    view = TrainingView(Controller(config))
    qtbot.addWidget(view)
    view.show()
    probe = LagProbe()
    probe.start()
    with qtbot.waitSignal(view.trainingEnded, timeout=180000) as ended:
        assert view.start_training()
    probe.stop()
    print(f"\nevent-loop lag during a real tiny training run: {probe.report()}")
    outcome = ended.args[0]
    assert isinstance(outcome, Finished), getattr(outcome, "reason", outcome)
    assert outcome.reason in ("completed", "early_stopped")
    shown = view.plot.shown_data()
    assert len(shown["train_steps"]) >= 4 and len(shown["val_steps"]) >= 2 and shown["best"]
    assert (Path(config.out) / "adapter" / "adapter_config.json").is_file()
    assert view.history.current_run() == config.out and view.history.chat_button.isEnabled()
    assert "Training lora on CPU" in view.log.toPlainText()  # the Started event, in words

    # "Chat with this run": the real chat worker (engine.evaluate.worker.chat_main) serves both panes.
    chat = EvaluationView(view.controller)
    qtbot.addWidget(chat)
    chat.show()  # the chat worker starts only when its tab is on screen
    try:
        with qtbot.waitSignal(chat.chatReady, timeout=120000):
            view.history.chat_button.click()
        chat.settings.set_values({"max_new_tokens": 4, "temperature": 0.0})
        chat.prompt.setPlainText("What is 2 plus 3?")
        with qtbot.waitSignal(chat.turnFinished, timeout=60000):
            assert chat.send()
        assert len(chat.base_pane.answers) == 1 and len(chat.tuned_pane.answers) == 1
        assert "tokens in" in chat.base_pane.plain_text() and "tokens in" in chat.tuned_pane.plain_text()
    finally:
        chat.shutdown()
