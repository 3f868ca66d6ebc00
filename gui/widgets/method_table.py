"""The five ways to fine-tune, compared side by side; picking a row picks the method."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from gui.style import label

# method -> (display name, parameters updated, memory, risk of forgetting, quality, one plain sentence).
# The comparison follows the project's method table (shared/seeds/001); the sentences are ours.
METHODS = {
    "lora": ("LoRA", "0.1–1 %", "Low", "Low", "Close to full",
             "Learns a small add-on beside the model's weights: the usual best choice."),
    "qlora": ("QLoRA", "0.1–1 % (4-bit model)", "Very low", "Low", "Slightly below LoRA",
              "LoRA on a model squeezed to 4 bits: the least memory, but it needs an NVIDIA graphics card."),
    "full": ("Full fine-tuning", "100 %", "Very high", "High", "Highest",
             "Changes every weight: the strongest result, the most memory, and the easiest way to make the "
             "model forget what it knew."),
    "prefix": ("Prefix tuning", "about 0.1 %", "Low", "Very low", "Moderate",
               "Learns a few hidden tokens placed in front of every layer: gentle, but learns less."),
    "prompt": ("Prompt tuning", "about 0.01 %", "Very low", "Very low", "Below LoRA",
               "Learns only a few extra input tokens: the lightest touch, for simple tasks."),
}
HEADERS = ["Method", "Weights changed", "Memory", "Risk of forgetting", "Quality"]


class MethodTable(QWidget):
    """Emits methodChosen(name) when the user picks a row; `set_method` selects without emitting."""

    methodChosen = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(len(METHODS), len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setFocusPolicy(self.table.focusPolicy())
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self._order = list(METHODS)
        for row, method in enumerate(self._order):
            for column, text in enumerate(METHODS[method][:5]):
                item = QTableWidgetItem(text)
                item.setToolTip(METHODS[method][5])
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().height() + sum(self.table.rowHeight(r) for r in range(len(METHODS)))
        self.table.setFixedHeight(height + 4)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout.addWidget(self.table)
        self.explanation = label("", "hint")
        layout.addWidget(self.explanation)
        self._quiet = False

    def set_method(self, method: str) -> None:
        """Select `method`'s row and show its sentence (no methodChosen signal)."""
        self._quiet = True
        try:
            self.table.selectRow(self._order.index(method))
        finally:
            self._quiet = False
        self.explanation.setText(f"{METHODS[method][0]}: {METHODS[method][5]}")

    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        method = self._order[rows[0].row()]
        self.explanation.setText(f"{METHODS[method][0]}: {METHODS[method][5]}")
        if not self._quiet:
            self.methodChosen.emit(method)
