"""Run history panel: past runs with their outcome; show curves, resume from a checkpoint, or chat."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from gui import runs


class RunHistoryPanel(QWidget):
    """Lists the run folders under the data folder, newest first.

    Signals:
        runChosen(str): the user selected a run (its folder); the view shows its curves.
        resumeRequested(str, str): resume the run (folder) from the checkpoint (folder).
        chatRequested(str): open the run in the Evaluation tab to chat with it.
    """

    runChosen = Signal(str)
    resumeRequested = Signal(str, str)
    chatRequested = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        title = QLabel("Run history")
        title.setProperty("role", "subtitle")
        self.list = QListWidget()
        self.list.setToolTip("Your past training runs, newest first. Select one to see its curves.")
        self.list.setSpacing(2)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.outcome = QLabel("")
        self.outcome.setProperty("role", "hint")
        self.outcome.setWordWrap(True)
        self.checkpoints = QComboBox()
        self.checkpoints.setToolTip("Checkpoints are saved whole or not at all; any listed one is safe to resume from.")
        self.resume_button = QPushButton("Resume from checkpoint")
        self.resume_button.setToolTip("Continue this run from the chosen checkpoint with the same settings.")
        self.resume_button.clicked.connect(self._on_resume)
        self.chat_button = QPushButton("Chat with this run")
        self.chat_button.setToolTip("Open the Evaluation tab with this run: compare its answers with the base model.")
        self.chat_button.clicked.connect(self._on_chat)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.outcome)
        layout.addWidget(QLabel("Checkpoint:"))
        layout.addWidget(self.checkpoints)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.chat_button)
        layout.addLayout(buttons)
        self._busy = False
        self._has_result = False
        self._update_buttons()

    def refresh(self, select: str | Path | None = None) -> None:
        """Re-read the runs folder; keep (or move) the selection to `select` when given."""
        wanted = str(select) if select else self.current_run()
        self.list.blockSignals(True)
        self.list.clear()
        for summary in runs.list_runs():
            item = QListWidgetItem(summary.two_line_label())
            item.setData(Qt.ItemDataRole.UserRole, str(summary.path))
            item.setToolTip(f"{summary.path}\nBase model: {summary.base_model_path or 'unknown'}")
            self.list.addItem(item)
            if str(summary.path) == wanted:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._show_details(self.current_run())

    def current_run(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def set_busy(self, busy: bool) -> None:
        """While training runs, resuming another run is not possible."""
        self._busy = busy
        self._update_buttons()

    def _on_current_changed(self, *_):
        run_dir = self.current_run()
        self._show_details(run_dir)
        if run_dir:
            self.runChosen.emit(run_dir)

    def _show_details(self, run_dir: str) -> None:
        self.checkpoints.clear()
        if run_dir:
            summary = runs.RunSummary(Path(run_dir), runs.read_run_info(run_dir))
            best = f"; best step {summary.best_step}" if summary.best_step is not None else ""
            self.outcome.setText(f"{summary.method}, {summary.status_words}{best}")
            for checkpoint in reversed(summary.checkpoints()):  # newest first: the usual choice
                self.checkpoints.addItem(checkpoint.name, str(checkpoint))
            self._has_result = summary.has_result
        else:
            self.outcome.setText("No run selected." if self.list.count() else "No runs yet: train one to see it here.")
            self._has_result = False
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.resume_button.setEnabled(not self._busy and self.checkpoints.count() > 0)
        self.chat_button.setEnabled(self._has_result)

    def _on_resume(self) -> None:
        if self.current_run() and self.checkpoints.currentData():
            self.resumeRequested.emit(self.current_run(), self.checkpoints.currentData())

    def _on_chat(self) -> None:
        if self.current_run():
            self.chatRequested.emit(self.current_run())
