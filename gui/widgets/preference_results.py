"""The preference part of a run's evaluation: base vs tuned on held-out pairs, and the length guard.

Shown under the before/after table for runs trained on preference pairs (RUN/eval/results.json
holds a "preference" section). "Compare answers" opens the answers whose length grew most, base
beside tuned, so a reader can judge whether the extra words carry anything.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QGridLayout, QHBoxLayout, QPlainTextEdit, QPushButton,
                               QScrollArea, QVBoxLayout, QWidget)

from gui.style import label
from gui.widgets.before_after import comparison_grid, format_value
from gui.widgets.card import Card

# (row label, key, format, side(s) it is shown for, what it means)
ROWS = [("Prefers the chosen answer", "accuracy", "{:.0%}", ("base", "tuned"),
         "Share of held-out pairs where the model gives the chosen answer a higher total log-probability than the "
         "rejected one (not length-normalised)."),
        ("Per token", "accuracy_per_token", "{:.0%}", ("base", "tuned"),
         "The same, comparing the mean log-probability per token (length-normalised)."),
        ("Log-prob margin", "margin", "{:+.1f}", ("base", "tuned"),
         "Mean of log p(chosen) − log p(rejected) over the pairs. Higher is better."),
        ("Implicit reward right", "reward_accuracy", "{:.0%}", ("tuned",),
         "DPO's implicit reward: how much more the tuned model than the base likes each answer. Share of pairs "
         "where that favours the chosen one."),
        ("Answer length (tokens)", "mean_length", "{:.0f}", ("base", "tuned"),
         "Mean length of the models' own greedy answers to the held-out prompts.")]


class PreferenceResults(Card):
    """`show_results(results)` fills it from an evaluation results dict; hidden when there is no preference part."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Preference pairs", "Which of two answers each model prefers, on pairs held out from "
                                             "training. Hover over a row to see what it measures.", parent)
        grid, self.cells, _ = comparison_grid([(text, key, meaning) for text, key, _p, _s, meaning in ROWS])
        self.body.addLayout(grid)
        self.verdict = label("", "hint")
        self.body.addWidget(self.verdict)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.compare_button = QPushButton("Compare answers…")
        self.compare_button.setToolTip("The held-out answers whose length changed most, base beside tuned.")
        self.compare_button.clicked.connect(self.show_answers)
        buttons.addWidget(self.compare_button)
        self.body.addLayout(buttons)
        self.results: Optional[dict] = None
        self.dialog: Optional[QDialog] = None
        self.setVisible(False)

    def show_results(self, results: Optional[dict]) -> None:
        section = (results or {}).get("preference")
        self.results = section
        self.setVisible(bool(section))
        if not section:
            return
        for text, key, pattern, sides, _meaning in ROWS:
            base_cell, tuned_cell = self.cells[key]
            base_cell.setText(format_value(section["base"].get(key), pattern) if "base" in sides else "")
            tuned_cell.setText(format_value(section["tuned"].get(key), pattern) if "tuned" in sides else "")
        self.verdict.setText(section.get("verdict", ""))
        self.verdict.setProperty("role", "warning" if section.get("verbose_without_substance") else "hint")
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        self.compare_button.setEnabled(bool(section.get("examples")))

    def show_answers(self) -> QDialog:
        """A dialog with the example answers side by side; returns it (non-modal)."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Answers, base beside tuned")
        dialog.resize(900, 620)
        layout = QVBoxLayout(dialog)
        layout.addWidget(label("The held-out prompts whose answers grew most. Longer is only better when the extra "
                               "words answer the question.", "hint"))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        inner = QWidget()
        rows = QGridLayout(inner)
        for number, example in enumerate((self.results or {}).get("examples", [])):
            rows.addWidget(label(f"Row {example.get('row')}: {example['prompt']}", "subtitle"), 3 * number, 0, 1, 2)
            for column, side in enumerate(("base", "tuned")):
                title = f"{'Base' if side == 'base' else 'Tuned'} · {example[f'{side}_tokens']} tokens"
                rows.addWidget(label(title, "hint"), 3 * number + 1, column)
                text = QPlainTextEdit(example[side])
                text.setReadOnly(True)
                text.setMinimumHeight(120)
                rows.addWidget(text, 3 * number + 2, column)
        scroll.setWidget(inner)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.show()
        self.dialog = dialog
        return dialog
