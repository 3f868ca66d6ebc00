"""Editors for the chat's generation settings, built from engine.evaluate.settings.GenerationSettings.

Labels, ranges and the plain-words help (tooltip and a line under the form for the setting being
edited) all come from the engine's field definitions, so the window and the CLI say the same thing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QSpinBox, QVBoxLayout, QWidget

from engine.evaluate.settings import GenerationSettings
from gui.style import label

LABELS = {"max_new_tokens": "Max new tokens", "temperature": "Temperature", "top_p": "Top-p",
          "repetition_penalty": "Repetition penalty", "seed": "Seed"}
DECIMALS = {"temperature": 2, "top_p": 2, "repetition_penalty": 2}


class GenerationSettingsForm(QWidget):
    """One spin box per setting; `values()` returns the dict a chat request carries."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.editors: dict[str, QWidget] = {}
        defaults = GenerationSettings()
        for item in dataclasses.fields(GenerationSettings):
            low, high = item.metadata["valid"]
            value = getattr(defaults, item.name)
            if item.name in DECIMALS:
                editor = QDoubleSpinBox()
                editor.setDecimals(DECIMALS[item.name])
                editor.setSingleStep(0.05)
            else:
                editor = QSpinBox()
            editor.setRange(low, high)
            editor.setValue(value)
            editor.setToolTip(item.metadata["help"])
            editor.installEventFilter(self)
            self.editors[item.name] = editor
            form.addRow(LABELS.get(item.name, item.name.replace("_", " ").capitalize()), editor)
        self.help = label("Hover over or click a setting to see what it does.", "hint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.help)
        layout.addStretch(1)

    def values(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in self.editors:
                self.editors[name].setValue(value)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        """Show the help of the setting that has the focus (tooltips are easy to miss)."""
        from PySide6.QtCore import QEvent

        if event.type() in (QEvent.Type.FocusIn, QEvent.Type.Enter):
            self.help.setText(watched.toolTip())
        return super().eventFilter(watched, event)
