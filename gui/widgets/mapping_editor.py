"""Tell Tunesmith what the columns of an unrecognised file mean (column -> role)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from gui.style import label

# role -> what the user reads in the drop-down
# (the roles are engine.data.formats.ROLES of the prompt/completion layout)
ROLES = {
    "": "not used",
    "prompt": "the question / instruction",
    "completion": "the answer to learn",
    "system": "a system message",
}


class MappingEditor(QWidget):
    """One drop-down per column; `Apply` emits mappingApplied({column: role})."""

    mappingApplied = Signal(dict)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.intro = label("The columns of this file were not recognised. Say what each one holds, "
                           "then press Apply.", "hint")
        layout.addWidget(self.intro)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(12)
        self.grid.setColumnStretch(2, 1)  # keep the drop-downs compact, next to their column names
        layout.addLayout(self.grid)
        buttons = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self._apply)
        buttons.addWidget(self.apply_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.error = label("", "error")
        layout.addWidget(self.error)
        self.combos: dict[str, QComboBox] = {}

    def set_columns(self, columns: list[str], mapping: Optional[dict] = None) -> None:
        """Show one row per column, preselecting `mapping` or a guess from the column's name."""
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.combos = {}
        mapping = mapping or {}
        for i, column in enumerate(columns):
            combo = QComboBox()
            combo.setMinimumWidth(260)
            for role, text in ROLES.items():
                combo.addItem(text, role)
            role = mapping.get(column, guess_role(column))
            combo.setCurrentIndex(max(0, combo.findData(role)))
            self.grid.addWidget(label(f"Column “{column}”", wrap=False), i, 0)
            self.grid.addWidget(combo, i, 1)
            self.combos[column] = combo
        self.error.setText("")

    def mapping(self) -> dict:
        """The chosen {column: role}, leaving out unused columns."""
        return {column: combo.currentData() for column, combo in self.combos.items() if combo.currentData()}

    def _apply(self) -> None:
        mapping = self.mapping()
        roles = list(mapping.values())
        if "prompt" not in roles or "completion" not in roles:
            self.error.setText("Choose one column for the question and one for the answer to learn.")
            return
        if len(set(roles)) != len(roles):
            self.error.setText("Each meaning can be given to one column only.")
            return
        self.error.setText("")
        self.mappingApplied.emit(mapping)


def guess_role(column: str) -> str:
    """A first guess from common column names, so most users only press Apply."""
    name = column.lower()
    if any(word in name for word in ("instruction", "question", "prompt", "query", "request", "input")):
        return "prompt"
    if any(word in name for word in ("response", "answer", "output", "completion", "reply", "target")):
        return "completion"
    if name in ("system", "system_prompt"):
        return "system"
    return ""
