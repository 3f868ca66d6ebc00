"""Before/after numbers of a run (RUN/eval/results.json) and the "Run evaluation" job that makes them.

The evaluation runs in a child process (engine.evaluate.worker.eval_main) through a ProcessHost;
its Progress events drive the progress bar, and when it finishes the saved results are shown.
"""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QProgressBar, QPushButton, QWidget)

from engine.evaluate.before_after import load_results
from engine.evaluate.report import heldout_line
from engine.evaluate.runfolder import heldout_part
from engine.events import Event, Failed, Finished, Notice, Progress
from gui.process_host import ProcessHost
from gui.style import label
from gui.widgets.card import Card

EVAL_TARGET = "engine.evaluate.worker:eval_main"

# (row label, results key, how to show it, True when higher is better, what it means)
ROWS = [("Test loss", "val_loss", "{:.3f}", False,
         "How surprised the model is by the held-out answers. Lower is better."),
        ("Perplexity", "perplexity", "{:.2f}", False,
         "The loss as 'how many words the model hesitates between'. Lower is better."),
        ("Exact match", "exact_match", "{:.0%}", True,
         "Share of held-out questions answered exactly like the reference."),
        ("chrF", "chrf", "{:.1f}", True, "Closeness of the answers to the references, 0 to 100 (character level)."),
        ("ROUGE-L", "rouge_l", "{:.1f}", True, "Overlap of the answers with the references, 0 to 100 (word level)."),
        ("General ability", "probe_accuracy", "{:.0%}", True,
         "Score on a built-in set of general questions: a big drop means the model forgot what it knew.")]


def format_value(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


class BeforeAfterPanel(Card):
    """Signals: evaluationFinished(object): the eval worker's Finished or Failed event."""

    evaluationFinished = Signal(object)

    def __init__(self, parent: Optional[QWidget] = None, *, target: str = EVAL_TARGET):
        super().__init__("Before and after", "Base and tuned model on the examples held out from training. "
                                             "Hover over a row to see what it measures.", parent)
        self.target = target
        self.run_dir = ""
        self.host: Optional[ProcessHost] = None
        grid = QGridLayout()
        grid.addWidget(label("", "hint"), 0, 0)
        grid.addWidget(label("Base", "subtitle"), 0, 1)
        grid.addWidget(label("Tuned", "subtitle"), 0, 2)
        self.cells: dict[str, tuple] = {}
        self.row_labels: dict[str, Any] = {}
        for row, (text, key, _pattern, _higher, meaning) in enumerate(ROWS, start=1):
            row_label = label(text, "hint")
            row_label.setToolTip(meaning)
            grid.addWidget(row_label, row, 0)
            self.row_labels[key] = row_label
            base, tuned = label("–"), label("–")
            grid.addWidget(base, row, 1)
            grid.addWidget(tuned, row, 2)
            self.cells[key] = (base, tuned)
        grid.setColumnStretch(0, 1)
        self.body.addLayout(grid)
        self.verdict = label("", "warning")
        self.verdict.setVisible(False)
        self.body.addWidget(self.verdict)
        self.status = label("", "hint")
        self.body.addWidget(self.status)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.run_button = QPushButton("Run evaluation")
        self.run_button.setToolTip("Measure the loss on the test examples, answer them with both models and check "
                                   "general ability. Takes a while on big models; you can keep chatting meanwhile.")
        self.run_button.clicked.connect(self.toggle_evaluation)
        row.addWidget(self.progress, 1)
        row.addWidget(self.run_button)
        self.body.addLayout(row)
        self.set_run("")

    def set_run(self, run_dir: str) -> None:
        """Show the saved results of `run_dir` (or say it was not evaluated yet)."""
        self.run_dir = str(run_dir or "")
        results = load_results(self.run_dir) if self.run_dir else None
        self.show_results(results)
        self.run_button.setEnabled(bool(self.run_dir) or self.host is not None)

    def show_results(self, results: Optional[dict]) -> None:
        for key, (base_cell, tuned_cell) in self.cells.items():
            pattern = next(row[2] for row in ROWS if row[1] == key)
            base_value = ((results or {}).get("base") or {}).get(key)
            tuned_value = ((results or {}).get("tuned") or {}).get(key)
            base_cell.setText(format_value(base_value, pattern))
            tuned_cell.setText(format_value(tuned_value, pattern) + self._arrow(key, base_value, tuned_value))
        forgetting = (results or {}).get("forgetting") or {}
        self.verdict.setText(forgetting.get("verdict", ""))
        self.verdict.setVisible(bool(forgetting.get("verdict")))
        if results is None:
            self.status.setText("Not evaluated yet: press Run evaluation." if self.run_dir else "Choose a run first.")
        else:
            self.status.setText(f"Evaluated {results.get('created', '')} on {results.get('device', '?')}. "
                                + heldout_line(results))
        # Older runs were measured on validation rows: the row says which loss it is.
        part = heldout_part(results) if results is not None else "test"
        self.row_labels["val_loss"].setText(f"{part.capitalize()} loss")

    @staticmethod
    def _arrow(key: str, base: Any, tuned: Any) -> str:
        """'  (better)' / '  (worse)' beside the tuned value; the direction depends on the measure."""
        if base is None or tuned is None or base == tuned:
            return ""
        higher_is_better = next(row[3] for row in ROWS if row[1] == key)
        better = (tuned > base) == higher_is_better
        return "  (better)" if better else "  (worse)"

    # --- the evaluation job -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.host is not None

    def toggle_evaluation(self) -> None:
        if self.host is not None:
            self.host.request_stop()
            self.status.setText("Stopping the evaluation…")
            return
        self.start_evaluation()

    def start_evaluation(self, options: Optional[dict] = None) -> None:
        """Evaluate the shown run in a child process; results appear when it finishes."""
        if not self.run_dir or self.host is not None:
            return
        self.host = ProcessHost(self.target, args=(self.run_dir,), kwargs={"options": options or {}}, name="eval",
                                stop_grace_s=30.0, parent=self)
        self.host.eventReceived.connect(self._on_event)
        self.host.ended.connect(self._on_ended)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.run_button.setText("Stop evaluation")
        self.status.setText("Starting the evaluation: loading the model…")
        self.host.start()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Progress) and event.total_steps:
            self.progress.setValue(int(100 * event.step / event.total_steps))
        elif isinstance(event, Notice):
            self.status.setText(event.message)

    def _on_ended(self, outcome: Optional[Event]) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.wait(2000)
            host.deleteLater()
        self.progress.setVisible(False)
        self.run_button.setText("Run evaluation")
        self.set_run(self.run_dir)
        if isinstance(outcome, Failed):
            self.status.setText(f"The evaluation failed: {outcome.reason} {outcome.hint}".strip())
        elif isinstance(outcome, Finished) and outcome.reason == "stopped":
            self.status.setText("Evaluation stopped; nothing was saved.")
        self.evaluationFinished.emit(outcome)

    def shutdown(self) -> None:
        """Stop a running evaluation and wait for it (the window is closing)."""
        if self.host is not None:
            self.host.kill_now()
            self.host.wait(10000)
