"""Editors for config fields, built from the config's own help texts and ranges.

Each row shows a plain label, an editor whose tooltip is the field's help (with its usual range),
and a warning line that appears as soon as the value leaves the usual range (`engine.config.check`).
Editors write through the Controller, and follow it when another view changes the same setting.
"""
from __future__ import annotations

import math
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QLineEdit, QSpinBox,
                               QWidget)

from engine import config as cfg
from gui.controller import Controller
from gui import style
from gui.style import label


def tooltip_for(dotted: str) -> str:
    """The tooltip of a setting: its help text, its usual range and its config key."""
    section, _, name = dotted.rpartition(".")
    meta = cfg.field_info(section, name)
    lines = [meta["help"]]
    if meta.get("typical"):
        low, high = meta["typical"]
        lines.append(f"Usually between {low:g} and {high:g}.")
    if meta.get("choices"):
        lines.append("Choices: " + ", ".join(meta["choices"]) + ".")
    lines.append(f"(config key: {dotted})")
    return "<p style='white-space:pre-wrap; max-width:340px'>" + "<br>".join(lines) + "</p>"


class ScientificSpinBox(QDoubleSpinBox):
    """A number box for values spanning decades (the learning rate): shows 2e-04, steps ×/÷ 2."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setDecimals(12)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt naming
        return f"{value:.0e}" if value and math.isclose(value, float(f"{value:.0e}")) else f"{value:.2e}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        from PySide6.QtGui import QValidator
        try:
            float(text)
            return QValidator.Acceptable, text, pos
        except ValueError:
            return QValidator.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.setValue(self.value() * (2.0 ** steps))


class SettingsForm(QWidget):
    """A two-column form of settings; `add(key, text)` adds one row bound to the controller."""

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(14)
        self.grid.setVerticalSpacing(6)
        self.grid.setColumnStretch(1, 1)
        self.editors: dict[str, QWidget] = {}
        self.captions: dict[str, QWidget] = {}
        self.warnings: dict[str, QWidget] = {}
        self._updating = False
        controller.configChanged.connect(self._on_config_changed)

    def add(self, dotted: str, text: str) -> QWidget:
        """Add a row for `dotted` (e.g. 'training.lr') with the plain label `text`; returns the editor."""
        section, _, name = dotted.rpartition(".")
        meta = cfg.field_info(section, name)
        value = self.controller.get_value(dotted)
        editor = self._make_editor(dotted, value, meta)
        tip = tooltip_for(dotted)
        caption = label(f"{text} <span style='color:{style.ACCENT}; font-weight:600'>?</span>", wrap=False)
        caption.setToolTip(tip)
        editor.setToolTip(tip)
        row = self.grid.rowCount()
        self.grid.addWidget(caption, row, 0, Qt.AlignVCenter)
        self.grid.addWidget(editor, row, 1)
        warning = label("", "warning")
        warning.setVisible(False)
        self.grid.addWidget(warning, row + 1, 0, 1, 2)
        self.editors[dotted] = editor
        self.captions[dotted] = caption
        self.warnings[dotted] = warning
        self._show_value(dotted)
        self._refresh_warnings()
        return editor

    def set_row_visible(self, dotted: str, visible: bool) -> None:
        """Show or hide one row (settings that do not apply to the chosen method are hidden)."""
        self.captions[dotted].setVisible(visible)
        self.editors[dotted].setVisible(visible)
        self.warnings[dotted].setVisible(visible and bool(self.warnings[dotted].text()))

    def _make_editor(self, dotted: str, value, meta: dict) -> QWidget:
        valid = meta.get("valid")
        if meta.get("choices"):
            editor = QComboBox()
            editor.addItems(list(meta["choices"]))
            editor.currentTextChanged.connect(lambda v, k=dotted: self._write(k, v))
        elif isinstance(value, bool):
            editor = QCheckBox()
            editor.toggled.connect(lambda v, k=dotted: self._write(k, v))
        elif isinstance(value, int):
            editor = QSpinBox()
            editor.setRange(int(valid[0]) if valid else 0, int(min(valid[1], 2**31 - 1)) if valid else 2**31 - 1)
            editor.valueChanged.connect(lambda v, k=dotted: self._write(k, v))
        elif isinstance(value, float):
            low, high = valid if valid else (0.0, 1e9)
            if dotted == "training.lr":
                editor = ScientificSpinBox()
            else:
                editor = QDoubleSpinBox()
                editor.setDecimals(3 if high <= 10 else 2)
                editor.setSingleStep(0.05 if high <= 1 else 0.5)
            editor.setRange(float(low), float(high))
            editor.valueChanged.connect(lambda v, k=dotted: self._write(k, v))
        else:
            editor = QLineEdit()
            editor.editingFinished.connect(lambda k=dotted, e=editor: self._write(k, e.text()))
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            # Arrow keys and the mouse wheel still step; the tiny arrow buttons were only clutter.
            editor.setButtonSymbols(QSpinBox.NoButtons)
            # Commit on Enter or leaving the box, not per keystroke: typing 600 must not pass through 6 and 60.
            editor.setKeyboardTracking(False)
        editor.setMinimumWidth(140)
        return editor

    def _write(self, dotted: str, value) -> None:
        if self._updating:
            return
        try:
            self.controller.set_value(dotted, value)
        except cfg.ConfigError as exc:
            self.warnings[dotted].setText(str(exc))
            self.warnings[dotted].setVisible(True)

    def _show_value(self, dotted: str) -> None:
        editor, value = self.editors[dotted], self.controller.get_value(dotted)
        self._updating = True
        try:
            if isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            elif isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                editor.setValue(value)
            else:
                editor.setText(str(value))
        finally:
            self._updating = False

    def _on_config_changed(self, dotted: str) -> None:
        keys = self.editors if not dotted else [dotted] if dotted in self.editors else []
        for key in keys:
            self._show_value(key)
        self._refresh_warnings()

    def _refresh_warnings(self) -> None:
        problems = {p.key: p for p in self.controller.problems()}
        for key, warning in self.warnings.items():
            problem = problems.get(key)
            warning.setText(problem.message if problem else "")
            warning.setProperty("role", "error" if problem and problem.level == "error" else "warning")
            warning.style().unpolish(warning)
            warning.style().polish(warning)
            warning.setVisible(problem is not None and self.editors[key].isVisibleTo(self))
