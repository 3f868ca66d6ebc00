"""The examples of a dataset as a table, and the rows that were left out, with their reasons."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QListWidget, QListWidgetItem, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engine.data.completion import split_text
from gui.widgets.card import Card


def first_message(example, role: str, completion_separator: str = "") -> str:
    """The first message of `role` in an example, on one line. Plain text is all question, unless the
    completion separator parts it into the given text (user) and the text to write (assistant)."""
    if example.messages is None:
        parts = split_text(example.text or "", completion_separator) if completion_separator else None
        given, written = parts if parts else (example.text or "", "")
        return " ".join((given if role == "user" else written).split())
    for message in example.messages:
        if message.get("role") == role:
            return " ".join(str(message.get("content", "")).split())
    return ""


class ExamplesList(QWidget):
    """Emits exampleSelected(index into the examples) and rejectedSelected(row in the file, reason)."""

    exampleSelected = Signal(int)
    rejectedSelected = Signal(int, str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        examples = Card("Examples", "Click one to see exactly what the model is trained on.")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Row", "Question", "Answer"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._on_example_selected)
        examples.body.addWidget(self.table)
        column.addWidget(examples, 3)
        self.rejected_card = Card("Rows left out", "These rows could not be used. Click one to see why.")
        self.rejected = QListWidget()
        self.rejected.setMaximumHeight(140)  # the examples stay the larger part
        # Clicking and moving with the arrow keys both show the row.
        self.rejected.currentItemChanged.connect(lambda item, _old: self._on_rejected(item))
        self.rejected.itemClicked.connect(self._on_rejected)
        self.rejected_card.body.addWidget(self.rejected)
        self.rejected_card.setVisible(False)
        column.addWidget(self.rejected_card, 1)

    def show_examples(self, examples: list, completion_separator: str = "") -> None:
        """One table row per usable example: its row in the file, question and answer."""
        self.table.setRowCount(len(examples))
        for i, example in enumerate(examples):
            values = (str(example.row), first_message(example, "user", completion_separator),
                      first_message(example, "assistant", completion_separator))
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(value[:500])
                self.table.setItem(i, column, item)

    def show_rejected(self, rejected: list) -> None:
        """List the left-out rows (engine Rejection objects); the card hides when there are none."""
        self.rejected.clear()
        for rejection in rejected:
            item = QListWidgetItem(f"Row {rejection.row}: {rejection.reason}")
            item.setData(Qt.UserRole, rejection.row)
            item.setData(Qt.UserRole + 1, rejection.reason)
            self.rejected.addItem(item)
        self.rejected_card.setVisible(bool(rejected))

    def selected_index(self) -> Optional[int]:
        """Index of the selected example, or None."""
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _on_example_selected(self) -> None:
        index = self.selected_index()
        if index is not None:
            self.exampleSelected.emit(index)

    def _on_rejected(self, item: Optional[QListWidgetItem]) -> None:
        if item is None:  # the list was cleared
            return
        self.table.clearSelection()
        self.rejectedSelected.emit(item.data(Qt.UserRole), item.data(Qt.UserRole + 1))
