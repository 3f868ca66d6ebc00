"""What training teaches: to write the answers (sft), or to prefer one answer of a pair (dpo, orpo)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QGridLayout, QRadioButton, QWidget

from gui.style import label

# objective -> (name on the button, one plain sentence)
OBJECTIVES = {
    "sft": ("Answers (SFT)", "Learns to answer like the examples in your data."),
    "dpo": ("Preferences (DPO)", "From pairs of answers (a chosen and a rejected one), learns to favour the "
                                 "chosen one, while staying close to the model it started from."),
    "orpo": ("Preferences (ORPO)", "Also from pairs: learns to write the chosen answers and to avoid the rejected "
                                   "ones in one go, without a reference model; a little cheaper than DPO."),
}
PAIRS_NEEDED = ("DPO and ORPO learn from pairs (a prompt with a chosen and a rejected answer); the data chosen now "
                "has one answer per prompt.")
PAIRS_UNUSED = ("Your data has preference pairs: with SFT only the chosen answers are learned. Choose DPO or ORPO "
                "to learn the preference.")


class ObjectiveChoice(QWidget):
    """Emits objectiveChosen(name) when the user picks one; `set_objective` selects without emitting."""

    objectiveChosen = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        # One row of choices and one sentence for the chosen one: the Method view's right column also
        # holds the training plan and the settings, and all three must fit at 1280x800.
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(4)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        for column, (name, (title, sentence)) in enumerate(OBJECTIVES.items()):
            button = QRadioButton(title)
            button.setToolTip(sentence)
            self.group.addButton(button)
            self.buttons[name] = button
            button.toggled.connect(lambda on, chosen=name: on and self._picked(chosen))
            grid.addWidget(button, 0, column)
        grid.setColumnStretch(len(OBJECTIVES), 1)
        self.explanation = label(OBJECTIVES["sft"][1], "hint")
        grid.addWidget(self.explanation, 1, 0, 1, len(OBJECTIVES) + 1)
        self.note = label("", "warning")
        self.note.setVisible(False)
        grid.addWidget(self.note, 2, 0, 1, len(OBJECTIVES) + 1)
        self._quiet = False
        self.group.buttonToggled.connect(lambda *_: self._explain())

    def _explain(self) -> None:
        checked = [name for name, button in self.buttons.items() if button.isChecked()]
        if checked:
            self.explanation.setText(OBJECTIVES[checked[0]][1])

    def _picked(self, name: str) -> None:
        if not self._quiet:
            self.objectiveChosen.emit(name)

    def set_objective(self, name: str) -> None:
        self._quiet = True
        try:
            self.buttons.get(name, self.buttons["sft"]).setChecked(True)
        finally:
            self._quiet = False

    def selected(self) -> str:
        return next(name for name, button in self.buttons.items() if button.isChecked())

    def set_data_format(self, data_format: Optional[str]) -> None:
        """Say when the data does not suit the objective (no pairs for DPO, unused pairs for SFT)."""
        objective = self.selected()
        if data_format is None or data_format == "auto":
            text = ""
        elif objective != "sft" and data_format != "preference":
            text = PAIRS_NEEDED
        elif objective == "sft" and data_format == "preference":
            text = PAIRS_UNUSED
        else:
            text = ""
        self.note.setText(text)
        self.note.setVisible(bool(text))
