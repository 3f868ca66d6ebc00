"""The Dataset view's settings beside the length chart, and the split they give, in words.

Length, the shares held out for validation (watched during training) and test (kept for the
evaluation), a separate test file instead of the test share, the chat template, and general data
mixed in against forgetting. The split shown is the one training will make (engine.data.split).
For plain-text data also the completion separator (engine.data.completion), with the one the file
suggests, if any, a click away.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QToolButton, QVBoxLayout, QWidget

from engine.data.split import split_as_configured
from gui.controller import Controller
from gui.style import label
from gui.widgets.settings_form import SettingsForm

FILE_FILTER = "Datasets (*.json *.jsonl *.csv *.tsv *.parquet);;All files (*)"
SPLIT_KEYS = {"data.val_fraction", "data.test_fraction", "data.seed", "data.val_max_rows", "data.test_max_rows",
              "data.val_path", "data.test_path"}
TEST_FILE_TIP = ("Choose a file of examples to test the tuned model on after training, instead of keeping part of "
                 "your data aside. Training never sees them.")


class DataSettings(QWidget):
    """Signals `changed` when the split (and with it `split_warnings`) or the separator rows were updated."""

    changed = Signal()

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self.split_warnings: list[str] = []
        self._examples: list = []
        self._report = None  # engine.data.inspect.DatasetReport of the training file, or None
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        self.form = SettingsForm(controller)
        self.form.add("data.max_length", "Maximum length")
        self.form.add("data.val_fraction", "Held out for checking")
        self.form.add("data.test_fraction", "Kept for the final test")
        self.form.add("data.train_on_prompt", "Also learn the questions")
        self.form.add("model.template", "Chat template")
        # The seeds' remedy for catastrophic forgetting: keep some general examples in the mix.
        self.form.add("data.mix_ratio", "Share of general data")
        self.form.add("data.completion_separator", "Answer starts after")
        self.form.set_row_visible("data.completion_separator", False)
        column.addWidget(self.form)

        proposal_row = QHBoxLayout()
        self.separator_hint = label("", "hint")
        proposal_row.addWidget(self.separator_hint, 1)
        self.use_separator = QPushButton("Use it")
        self.use_separator.setToolTip("Learn only what follows the separator, and score those answers in the evaluation.")
        self.use_separator.clicked.connect(self._use_proposal)
        proposal_row.addWidget(self.use_separator)
        column.addLayout(proposal_row)

        files = QHBoxLayout()
        self.test_button = QPushButton()
        self.test_button.setToolTip(TEST_FILE_TIP)
        self.test_button.clicked.connect(self._choose_test_file)
        files.addWidget(self.test_button, 1)
        self.test_clear = QToolButton()
        self.test_clear.setText("✕")
        self.test_clear.setToolTip("Keep part of your data aside as the test set again (the file is not touched).")
        self.test_clear.clicked.connect(lambda: self.controller.set_value("data.test_path", ""))
        files.addWidget(self.test_clear)
        self.mix_button = QPushButton("General data…")
        self.mix_button.setToolTip("Pick a file of everyday instructions to train on alongside yours, so the model "
                                   "keeps what it already knew (protects against catastrophic forgetting).")
        self.mix_button.clicked.connect(self._choose_mix_file)
        files.addWidget(self.mix_button, 1)
        column.addLayout(files)
        self.split_label = label("", "hint")
        column.addWidget(self.split_label)
        column.addStretch(1)
        self._show_files()
        controller.configChanged.connect(self._on_config_changed)

    # --- files ------------------------------------------------------------------------------
    def _choose_test_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open test examples", self._start_folder(), FILE_FILTER)
        if path:
            self.controller.set_value("data.test_path", path)

    def _choose_mix_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open general data to mix in", self._start_folder(), FILE_FILTER)
        if path:
            self.controller.set_value("data.mix_path", path)
            if self.controller.config.data.mix_ratio == 0:
                self.controller.set_value("data.mix_ratio", 0.2)

    def _start_folder(self) -> str:
        data_path = self.controller.config.data.path
        return str(Path(data_path).parent) if data_path else ""

    def _show_files(self) -> None:
        data = self.controller.config.data
        self.test_button.setText(f"Test: {Path(data.test_path).name}" if data.test_path else "Test file…")
        self.test_clear.setVisible(bool(data.test_path))
        self.mix_button.setText(f"General: {Path(data.mix_path).name}" if data.mix_path else "General data…")
        # A test file replaces the test share: the share's box would only mislead.
        self.form.editors["data.test_fraction"].setEnabled(not data.test_path)

    # --- the completion separator ------------------------------------------------------------
    def _show_separator(self) -> None:
        """The separator row only for plain text, with the file's own separator offered when it differs."""
        is_text = self._report is not None and self._report.format == "text"
        self.form.set_row_visible("data.completion_separator", is_text)
        proposal = self._report.completion_separator if is_text else None
        current = self.controller.config.data.completion_separator
        offer = proposal is not None and proposal.separator != current
        if offer:
            self.separator_hint.setText(f"Suggested: '{proposal.separator}' ({proposal.rows} of {proposal.looked_at} "
                                        "rows)")
            self.separator_hint.setToolTip(f"{proposal.why[0].upper()}{proposal.why[1:]}.")
        elif is_text and not current:
            self.separator_hint.setText("No separator: every token is learned; evaluation measures loss only.")
        else:
            self.separator_hint.setText("")
        self.separator_hint.setVisible(bool(self.separator_hint.text()))
        self.use_separator.setVisible(offer)
        self.changed.emit()

    def _use_proposal(self) -> None:
        proposal = self._report.completion_separator if self._report is not None else None
        if proposal is not None:
            self.controller.set_value("data.completion_separator", proposal.separator)

    # --- the split --------------------------------------------------------------------------
    def set_data(self, examples: list, report) -> None:
        """The usable examples of the training file and its report; split and separator follow them."""
        self._examples, self._report = list(examples), report
        self._show_separator()
        self.update_split()

    def update_split(self) -> None:
        data = self.controller.config.data
        if not self._examples:
            self.split_label.setText("")
            self.split_warnings = []
            self.changed.emit()
            return
        split = split_as_configured(self._examples, data)
        parts = [f"{len(split.train)} examples for training",
                 f"{len(split.val)} held out to check progress (validation)" if not data.val_path
                 else f"validation from {Path(data.val_path).name}",
                 f"{len(split.test)} kept for the final test" if not data.test_path
                 else f"the final test from {Path(data.test_path).name}"]
        self.split_label.setText(", ".join(parts) + ".")
        self.split_warnings = list(split.warnings)
        self.changed.emit()

    def _on_config_changed(self, key: str) -> None:
        if key in ("", "data.test_path", "data.mix_path", "data.val_path"):
            self._show_files()
        if key in SPLIT_KEYS or key == "":
            self.update_split()
        if key in ("", "data.completion_separator"):
            self._show_separator()
