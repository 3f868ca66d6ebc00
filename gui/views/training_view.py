"""The Training tab: start, stop and resume training; watch the loss curves; browse past runs.

Training runs in a spawned child process (engine.worker.train_main) owned by a ProcessHost thread.
Events update a TrainingCurves; the plot and progress text are redrawn by ~10 Hz timers, so a fast
stream of events never blocks the window. A crash, an out-of-memory kill or a forced stop is shown
as a plain-words message with the log tail; the window stays, and the run's checkpoints stay listed.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSplitter,
                               QVBoxLayout, QWidget)

from engine import config as cfg
from engine.events import CheckpointSaved, Event, Failed, Finished, PreferenceMetric, Started
from gui.controller import Controller
from gui.process_host import ProcessHost
from gui.style import label, view_header
from gui.training_curves import FORGETTING_MESSAGE, OVERFITTING_MESSAGE, TrainingCurves, describe_event
from gui import runs
from gui.widgets.card import Card
from gui.widgets.loss_plot import LossPlot
from gui.widgets.preference_plot import PreferencePlot
from gui.widgets.run_history import RunHistoryPanel

TRAIN_TARGET = "engine.worker:train_main"
# After Stop, how long the worker may take to finish its step and save before it is ended forcibly:
# saving a fully fine-tuned model can take minutes; a hung worker must not keep the window forever.
STOP_GRACE_S = 300.0
REFRESH_INTERVAL_MS = 100
LOG_LINES_KEPT = 5000


class CloseChoice(Enum):
    STOP_AND_KEEP = "stop"
    KEEP_TRAINING = "keep"
    CANCEL = "cancel"


class TrainingView(QWidget):
    """The Training tab, built around one Controller.

    Signals:
        trainingStarted(): a worker was started.
        trainingEnded(object): the run ended; the argument is its Finished or Failed event.
        chatRequested(str): the user asked to chat with a run (the main window shows the Evaluation tab).
    """

    trainingStarted = Signal()
    trainingEnded = Signal(object)
    chatRequested = Signal(str)

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None, *, train_target: str = TRAIN_TARGET):
        super().__init__(parent)
        self.setObjectName("page")
        self.controller = controller
        self.train_target = train_target  # tests replace it with a fake worker
        self.host: Optional[ProcessHost] = None
        self.curves = TrainingCurves()
        self.current_run_dir = ""
        self._progress_dirty = False
        self._watched_window: Optional[QWidget] = None  # the top-level window whose close we guard
        self._build()
        self._show_curves()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self._refresh_progress)
        self._refresh_timer.start()
        self.history.refresh()
        self._set_running(False)

    # --- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 12)
        root.setSpacing(10)

        header, self.summary = view_header("Training", "")
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("primary")
        self.start_button.setToolTip("Train with the dataset and method chosen in the other tabs.")
        self.start_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step. What was learned so far is kept and saved.")
        self.stop_button.clicked.connect(self.stop_training)
        header.addWidget(self.stop_button)
        header.addWidget(self.start_button)
        root.addLayout(header)

        self.progress = QProgressBar()
        # Whole percent: QProgressBar repaints synchronously on every visible change, so a finer
        # range would repaint it at every redraw tick.
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress_label = label("Not training.", "hint")
        root.addWidget(self.progress)
        root.addWidget(self.progress_label)

        self.overfit_alert = label(OVERFITTING_MESSAGE, "warning")
        self.overfit_alert.setVisible(False)
        root.addWidget(self.overfit_alert)
        self.forgetting_alert = label(FORGETTING_MESSAGE, "warning")
        self.forgetting_alert.setVisible(False)
        root.addWidget(self.forgetting_alert)
        self.error_card = Card("There is a problem")
        self.error_message = label("", "error")
        self.error_log = QPlainTextEdit()
        self.error_log.setReadOnly(True)
        self.error_log.setMaximumHeight(90)
        self.error_card.body.addWidget(self.error_message)
        self.error_log_title = label("Last lines of the log:", "hint")
        self.error_card.body.addWidget(self.error_log_title)
        self.error_card.body.addWidget(self.error_log)
        self.error_card.setVisible(False)
        root.addWidget(self.error_card)

        splitter = QSplitter()
        left = QSplitter(Qt.Orientation.Vertical)
        plot_card = Card("Loss and general knowledge",
                         "Training loss should fall. Validation loss (examples held out from training) shows how "
                         "well the model does on new examples; the star marks its best step. The purple line "
                         "(right axis) is general knowledge: if it falls, the model is forgetting what it knew.")
        self.plot = LossPlot()
        plot_card.body.addWidget(self.plot)
        left.addWidget(plot_card)
        # Preference tuning (dpo, orpo) only: shown once its first numbers arrive.
        self.preference_card = Card("Preferences", "Does the model favour the chosen answers, on pairs it trains on "
                                                   "(blue) and on pairs held out (orange, green)? A preferred length "
                                                   "pulling away above the chosen answers' (grey) means verbosity.")
        self.preference_plot = PreferencePlot()
        self.preference_card.body.addWidget(self.preference_plot)
        self.preference_card.setVisible(False)
        left.addWidget(self.preference_card)
        log_card = Card("Log")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES_KEPT)
        log_card.body.addWidget(self.log)
        left.addWidget(log_card)
        left.setSizes([420, 230, 160])
        splitter.addWidget(left)
        history_card = Card("")
        history_card.title.setVisible(False)
        self.history = RunHistoryPanel()
        self.history.runChosen.connect(self.show_run)
        self.history.resumeRequested.connect(self.resume_training)
        self.history.chatRequested.connect(self._on_chat_requested)
        history_card.body.addWidget(self.history)
        splitter.addWidget(history_card)
        splitter.setSizes([760, 300])
        root.addWidget(splitter, 1)
        self.controller.configChanged.connect(lambda _key: self._update_summary())
        self._update_summary()

    def _update_summary(self) -> None:
        config = self.controller.config
        data = Path(config.data.path).name if config.data.path else "no dataset chosen"
        objective = "" if config.training.objective == "sft" else f" ({config.training.objective.upper()})"
        if config.training.plan == "auto":
            length = "steps and learning rate chosen for the data (see the Method tab)"
        else:
            length = (f"{config.training.max_steps} steps" if config.training.max_steps
                      else f"{config.training.epochs:g} epochs") + f", learning rate {config.training.lr:g}"
        self.summary.setText(f"Method {config.method.name}{objective} · model {config.model.name} · data {data} · "
                             f"{length}")

    # --- actions --------------------------------------------------------------------------
    @property
    def is_training(self) -> bool:
        return self.host is not None

    def start_training(self) -> bool:
        """Validate the current config and start a training worker; False (with a message) if refused."""
        if self.is_training:
            return False
        config = self.controller.build_config()
        try:
            warnings = cfg.validate(config)
        except cfg.ConfigError as exc:
            self._show_problem("The settings cannot be used yet:\n" + str(exc))
            return False
        self._begin(config, resume_from=None)
        for problem in warnings:
            self._log(f"Note: {problem.message}")
        return True

    def resume_training(self, run_dir: str, checkpoint: str) -> bool:
        """Continue `run_dir` from `checkpoint` with the settings the run was made with (its run.yaml)."""
        if self.is_training:
            return False
        try:
            config = cfg.load(Path(run_dir) / "run.yaml")
        except cfg.ConfigError as exc:
            self._show_problem(f"This run cannot be resumed: {exc}")
            return False
        config.out = str(run_dir)
        step = int(Path(checkpoint).name.rpartition("-")[2] or 0)
        self._begin(config, resume_from=checkpoint, curves=runs.load_curves(run_dir).until(step))
        self._log(f"Resuming {Path(run_dir).name} from {Path(checkpoint).name}.")
        return True

    def stop_training(self) -> None:
        """Ask the worker to stop after the current step; it saves what was learned."""
        if self.host is None:
            return
        self.host.request_stop()
        self.stop_button.setEnabled(False)
        self.progress_label.setText("Stopping after the current step and saving what was learned…")
        self._log("Stop requested: finishing the current step and saving.")

    def _begin(self, config, resume_from: Optional[str], curves: Optional[TrainingCurves] = None) -> None:
        """Start the worker; `curves` are the points already drawn (a resumed run continues them)."""
        self.curves = curves if curves is not None else TrainingCurves()
        self._show_curves()
        self.overfit_alert.setVisible(False)
        self.forgetting_alert.setVisible(False)
        self.error_card.setVisible(False)
        self.current_run_dir = config.out or ""
        kwargs = {"resume_from": resume_from} if resume_from else {}
        self.host = ProcessHost(self.train_target, args=(cfg.to_dict(config),), kwargs=kwargs, name="train",
                                stop_grace_s=STOP_GRACE_S, background=True, parent=self)
        self.host.eventReceived.connect(self._on_event)
        self.host.logText.connect(self._on_log_text)
        self.host.ended.connect(self._on_ended)
        self._log(f"Starting the training worker (log file: {self.host.log_path}).")
        self._set_running(True)
        self.host.start()
        self.trainingStarted.emit()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.history.set_busy(running)
        self.controller.set_busy(running)
        if running:
            self.progress_label.setText("Starting: loading the model and preparing the data…")
            self.progress.setValue(0)

    # --- worker events --------------------------------------------------------------------
    def _show_curves(self) -> None:
        self.plot.set_curves(self.curves)
        self.preference_plot.set_curves(self.curves.preference)
        self.preference_card.setVisible(bool(self.curves.preference))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PreferenceMetric):
            self.curves.apply(event)
            self.preference_plot.mark_changed()
            self.preference_card.setVisible(True)
        elif self.curves.apply(event):
            self.plot.mark_changed()
        self._progress_dirty = True
        if isinstance(event, Started):
            self.current_run_dir = event.run_dir
            self.history.refresh(select=event.run_dir)  # the engine has just made the run folder
        elif isinstance(event, CheckpointSaved):
            self.history.refresh(select=self.current_run_dir)  # list the new checkpoint at once
        line = describe_event(event)
        if line and not isinstance(event, (Finished, Failed)):  # the outcome is logged once, in _on_ended
            self._log(line)

    def _on_log_text(self, text: str) -> None:
        self.log.appendPlainText(text.rstrip("\n"))

    def _on_ended(self, outcome: Optional[Event]) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.wait(2000)
            host.deleteLater()
        if outcome is None:
            outcome = Failed(reason="The training worker ended without reporting a result.",
                             hint="The log shows what it was doing.")
        self.curves.apply(outcome)
        self._set_running(False)
        self._refresh_progress(force=True)
        self.plot.redraw_now()
        self._log(describe_event(outcome) or "")
        if isinstance(outcome, Failed):
            self._show_problem(f"{outcome.reason} {outcome.hint}".strip(), outcome.log_tail)
            self.controller.say("Training failed: " + outcome.reason)
        else:
            self.controller.say(describe_event(outcome) or "Training ended.")
        run_dir = getattr(outcome, "run_dir", "") or self.current_run_dir
        if isinstance(outcome, Failed) and run_dir:
            runs.record_failure(run_dir, outcome)
        self.history.refresh(select=run_dir or None)
        if isinstance(outcome, Finished) and run_dir:
            self.controller.select_run(run_dir)
        self.trainingEnded.emit(outcome)

    def _refresh_progress(self, force: bool = False) -> None:
        """Progress bar, its text and the overfitting alert, at most every REFRESH_INTERVAL_MS."""
        if not (self._progress_dirty or force):
            return
        self._progress_dirty = False
        self.progress.setValue(int(100 * self.curves.fraction_done))
        if self.is_training and not self.host.stop_requested:
            self.progress_label.setText(self.curves.progress_text())
        elif not self.is_training:
            outcome = self.curves.outcome
            if isinstance(outcome, Failed):
                text = "Training ended with a problem (see below)."
            else:
                text = describe_event(outcome) if outcome is not None else "Not training."
            self.progress_label.setText(text)
        self.overfit_alert.setVisible(self.curves.overfitting)
        self.forgetting_alert.setVisible(self.curves.forgetting)

    # --- history --------------------------------------------------------------------------
    def show_run(self, run_dir: str) -> None:
        """Show a past run's curves (ignored while training: the live curves stay on screen)."""
        if self.is_training:
            return
        events = runs.load_events(run_dir)
        self.curves = TrainingCurves.from_events(events)
        # What the run said while it trained, in the same words as the live log (its metrics.jsonl).
        lines = [line for line in map(describe_event, events) if line]
        self.log.setPlainText("\n".join([f"{Path(run_dir).name}, as it was reported while training:"] + lines))
        self._show_curves()
        self.plot.redraw_now()
        self.preference_plot.redraw_now()
        self.error_card.setVisible(False)
        self._refresh_progress(force=True)

    def _on_chat_requested(self, run_dir: str) -> None:
        self.controller.select_run(run_dir)
        self.chatRequested.emit(run_dir)

    # --- closing --------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Watch the top-level window's close, so closing during training always asks first."""
        window = self.window()
        if window is not self and window is not self._watched_window:
            window.installEventFilter(self)
            self._watched_window = window
        super().showEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._watched_window and event.type() == QEvent.Type.Close:
            if not self.confirm_close():
                event.ignore()
                return True  # the window stays open; its own closeEvent does not run
        return super().eventFilter(watched, event)

    def ask_close_choice(self) -> CloseChoice:
        """Ask what to do with the running training when the window closes."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Training is running")
        box.setText("Training is still running. What should happen to it?")
        box.setInformativeText("Stop and keep: training stops after the current step and what was learned is "
                               "saved, then the window closes.\nKeep training: the window closes and training "
                               "continues; its result appears in Run history next time.")
        stop = box.addButton("Stop and keep", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep training", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(stop)
        box.exec()
        if box.clickedButton() is stop:
            return CloseChoice.STOP_AND_KEEP
        if box.clickedButton() is keep:
            return CloseChoice.KEEP_TRAINING
        return CloseChoice.CANCEL

    def confirm_close(self) -> bool:
        """Call from the main window's closeEvent: True when the window may close now.

        Stop and keep waits (the window stays responsive) until the worker has saved and exited,
        so a checkpoint is never left half-written.
        """
        if not self.is_training:
            return True
        choice = self.ask_close_choice()
        if choice is CloseChoice.CANCEL:
            return False
        if choice is CloseChoice.KEEP_TRAINING:
            self._detach_worker()
            return True
        self.stop_training()
        self.wait_until_stopped()
        return True

    def wait_until_stopped(self) -> None:
        """Run the event loop until the worker has ended (ProcessHost escalates if it hangs)."""
        if self.host is None:
            return
        loop = QEventLoop()
        self.trainingEnded.connect(loop.quit)
        if self.host is not None:  # it may have ended while connecting
            loop.exec()
        self.trainingEnded.disconnect(loop.quit)

    def _detach_worker(self) -> None:
        """Let training go on without the window: stop listening; the child keeps writing its run folder."""
        host, self.host = self.host, None
        if host is not None:
            for sig in (host.eventReceived, host.logText, host.ended):
                sig.disconnect()
            host.detach()
            host.wait(2000)  # the pump thread notices within one poll interval
        self._set_running(False)

    # --- helpers --------------------------------------------------------------------------
    def _show_problem(self, message: str, log_tail: Optional[str] = None) -> None:
        """Show a problem in plain words; `log_tail` (a worker's last output) only for worker failures."""
        self.error_message.setText(message)
        self.error_log.setPlainText(log_tail or "(the worker wrote nothing)")
        self.error_log.setVisible(log_tail is not None)
        self.error_log_title.setVisible(log_tail is not None)
        self.error_card.setVisible(True)
        self._log(message)

    def _log(self, line: str) -> None:
        if line:
            self.log.appendPlainText(line)

