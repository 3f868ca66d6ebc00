"""Before/after numbers of a run (RUN/eval/results.json) and the "Run evaluation" job that makes them.

The evaluation runs in a child process (engine.evaluate.worker.eval_main) through a ProcessHost;
its Progress events drive the progress bar, and when it finishes the saved results are shown.
"""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QProgressBar, QPushButton, QWidget)

from engine.evaluate.before_after import load_results
from engine.evaluate.report import difference_text, heldout_line, with_interval
from engine.evaluate.runfolder import heldout_part
from engine.events import Event, Failed, Finished, Notice, Progress
from gui.process_host import ProcessHost
from gui.style import label
from gui.widgets.card import Card
from gui.widgets.general_bars import GeneralBars

EVAL_TARGET = "engine.evaluate.worker:eval_main"

# (shown in the menu, the evaluation's benchmark option, tooltip)
BENCHMARK_CHOICES = [
    ("Full general-ability check", "full", "Every benchmark question (210): narrowest intervals. The base model's "
                                           "answers are cached, so only the tuned model answers each time."),
    ("Quick general-ability check", "quick", "A third of the benchmark questions: about three times faster, "
                                             "intervals about 1.7 times wider."),
    ("No general-ability check", "off", "Skip the benchmark: no forgetting verdict."),
]

# (row label, results key, how to show it, True when higher is better, what it means)
ROWS = [("Test loss", "val_loss", "{:.3f}", False,
         "How surprised the model is by the held-out answers. Lower is better."),
        ("Perplexity", "perplexity", "{:.2f}", False,
         "The loss as 'how many words the model hesitates between'. Lower is better."),
        ("Exact match", "exact_match", "{:.0%}", True,
         "Share of held-out questions answered exactly like the reference."),
        ("chrF", "chrf", "{:.1f}", True, "Closeness of the answers to the references, 0 to 100 (character level)."),
        ("ROUGE-L", "rouge_l", "{:.1f}", True, "Overlap of the answers with the references, 0 to 100 (word level)."),
        ("Probe questions", "probe_accuracy", "{:.0%}", True,
         "Short general questions, graded strictly (the reply must start with the answer); read the answers in "
         "the report. The forgetting verdict comes from the benchmark below.")]


def general_verdict(results: Optional[dict]) -> str:
    """The forgetting verdict in words: the benchmark's, or the probe's for runs evaluated before it existed."""
    general = (results or {}).get("general_ability") or {}
    if general.get("summary"):
        return general.get("headline") or general["summary"]
    return ((results or {}).get("forgetting") or {}).get("verdict", "")


def comparison_grid(rows: list[tuple[str, str, str]]) -> tuple[QGridLayout, dict[str, tuple], dict[str, Any]]:
    """A Base | Tuned table: one row per (label, key, tooltip); returns it, {key: (base cell, tuned cell)} and
    {key: row label}."""
    grid = QGridLayout()
    grid.addWidget(label("", "hint"), 0, 0)
    grid.addWidget(label("Base", "subtitle", wrap=False), 0, 1)
    grid.addWidget(label("Tuned", "subtitle", wrap=False), 0, 2)
    cells: dict[str, tuple] = {}
    row_labels: dict[str, Any] = {}
    for row, (text, key, meaning) in enumerate(rows, start=1):
        # Not word-wrapped: a wrapped label may be squeezed below one line when the column is short.
        row_label = label(text, "hint", wrap=False)
        row_label.setToolTip(meaning)
        grid.addWidget(row_label, row, 0)
        row_labels[key] = row_label
        base, tuned = label("–", wrap=False), label("–", wrap=False)
        grid.addWidget(base, row, 1)
        grid.addWidget(tuned, row, 2)
        cells[key] = (base, tuned)
    grid.setColumnStretch(0, 1)
    return grid, cells, row_labels


def format_value(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


class BeforeAfterPanel(Card):
    """Signals: evaluationFinished(object): the eval worker's Finished or Failed event."""

    evaluationFinished = Signal(object)
    resultsShown = Signal(object)  # the results dict now shown (None: not evaluated), for panels beside this one

    def __init__(self, parent: Optional[QWidget] = None, *, target: str = EVAL_TARGET):
        super().__init__("Before and after", "Base and tuned model on the examples held out from training. "
                                             "Hover over a row to see what it measures.", parent)
        self.target = target
        self.run_dir = ""
        self.host: Optional[ProcessHost] = None
        self.last_options: dict = {}  # what the last evaluation was asked to do
        self._build_actions()
        grid, self.cells, self.row_labels = comparison_grid(
            [(text, key, meaning) for text, key, _p, _h, meaning in ROWS])
        self.body.addLayout(grid)
        self.general_title = label("", "subtitle")
        self.general_title.setToolTip("Catastrophic forgetting, measured as the literature does: accuracy on a "
                                      "recognised multiple-choice benchmark, base against tuned on the same questions.")
        self.body.addWidget(self.general_title)
        self.general_numbers = label("", "hint")
        self.body.addWidget(self.general_numbers)
        self.bars = GeneralBars()
        self.body.addWidget(self.bars)
        self.verdict = label("", "warning")
        self.verdict.setVisible(False)
        self.body.addWidget(self.verdict)
        self.set_run("")

    def _build_actions(self) -> None:
        """What to measure, Run evaluation, its progress and what was measured when: at the top of the card,
        so the button is in sight on a small screen too (the benchmark bars below may need scrolling)."""
        row = QHBoxLayout()
        self.benchmark_choice = QComboBox()
        for text, value, tip in BENCHMARK_CHOICES:
            self.benchmark_choice.addItem(text, value)
            self.benchmark_choice.setItemData(self.benchmark_choice.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.benchmark_choice.setToolTip("How much of the general-ability benchmark to score.")
        self.run_button = QPushButton("Run evaluation")
        self.run_button.setToolTip("Measure the loss on the test examples, answer them with both models and check "
                                   "general ability. Takes a while on big models; you can keep chatting meanwhile.")
        self.run_button.clicked.connect(self.toggle_evaluation)
        row.addWidget(self.benchmark_choice, 1)
        row.addWidget(self.run_button)
        self.body.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.body.addWidget(self.progress)
        self.status = label("", "hint")
        self.body.addWidget(self.status)

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
        self._show_general(results)
        if results is None:
            self.status.setText("Not evaluated yet: press Run evaluation." if self.run_dir else "Choose a run first.")
        else:
            self.status.setText(f"Evaluated {results.get('created', '')} on {results.get('device', '?')}. "
                                + heldout_line(results))
        # Older runs were measured on validation rows: the row says which loss it is.
        part = heldout_part(results) if results is not None else "test"
        self.row_labels["val_loss"].setText(f"{part.capitalize()} loss")
        self.resultsShown.emit(results)

    def _show_general(self, results: Optional[dict]) -> None:
        general = (results or {}).get("general_ability")
        self.general_title.setVisible(bool(general))
        self.general_numbers.setVisible(bool(general))
        self.bars.set_general(general)
        self.bars.setVisible(bool(general))
        if general:
            self.general_title.setText(f"General ability: {general['items']} benchmark questions ({general['size']})")
            self.general_numbers.setText(
                f"Base {with_interval(general['base'])} → tuned {with_interval(general['tuned'])} right; "
                f"difference {difference_text(general['difference'])} (95% intervals).")
        verdict = general_verdict(results)
        self.verdict.setText(verdict)
        self.verdict.setToolTip((general or {}).get("summary", ""))
        self.verdict.setVisible(bool(verdict))
        forgot = bool(general) and general.get("verdict") == "forgot"
        self.verdict.setProperty("role", "warning" if forgot or not general else "subtitle")
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)

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
        options = {"benchmark": self.benchmark_choice.currentData(), **(options or {})}
        self.last_options = options
        self.host = ProcessHost(self.target, args=(self.run_dir,), kwargs={"options": options}, name="eval",
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
