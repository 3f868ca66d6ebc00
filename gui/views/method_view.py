"""The Method tab: which model, which way of fine-tuning, whether it fits, and the settings.

Everything here edits the Controller's config; "Show as YAML" / "Save config…" give the exact file
`tunesmith-cli train --config` reads, and "Open config…" reads one back.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QMessageBox, QPlainTextEdit,
                               QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from engine import config as cfg
from gui.controller import Controller
from gui.style import label, view_header
from gui.widgets.card import Card
from gui.widgets.hardware_panel import HardwarePanel
from gui.widgets.method_table import MethodTable
from gui.widgets.model_picker import ModelPicker
from gui.widgets.objective_choice import ObjectiveChoice
from gui.widgets.plan_panel import PlanPanel
from gui.widgets.settings_form import SettingsForm

LORA_KEYS = ("method.lora_r", "method.lora_alpha", "method.lora_dropout")
# What the automatic plan chooses: shown only for "My own settings".
PLANNED_KEYS = ("training.epochs", "training.lr", "training.batch_size", "training.warmup_ratio",
                "training.scheduler")
VIRTUAL_TOKEN_KEYS = ("method.num_virtual_tokens",)
PREFERENCE_KEYS = ("training.beta",)
YAML_FILTER = "Tunesmith config (*.yaml *.yml)"


class MethodView(QWidget):
    """Emits continueRequested when the user is done here and wants to train."""

    continueRequested = Signal()

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("page")
        self.controller = controller
        self._build()
        controller.configChanged.connect(self._on_config_changed)
        controller.datasetChanged.connect(self._on_dataset_changed)
        self._on_config_changed("")

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 12)
        root.setSpacing(12)
        header, _ = view_header("Model and method",
                                "The defaults work for the sample. Hover over any setting marked ? to see what it does.")
        for text, slot in (("Open config…", self.open_config), ("Save config…", self.save_config),
                           ("Show as YAML", self.show_yaml)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            header.addWidget(button)
        self.continue_button = QPushButton("Continue to training  →")
        self.continue_button.setObjectName("primary")
        self.continue_button.clicked.connect(self.continueRequested)
        header.addWidget(self.continue_button)
        root.addLayout(header)

        columns = QHBoxLayout()
        columns.setSpacing(14)
        left = QVBoxLayout()
        left.setSpacing(12)
        model_card = Card("Base model", "The model you start from. The starter model is small and trains in "
                                        "minutes on any computer.")
        self.model_picker = ModelPicker(self.controller)
        model_card.body.addWidget(self.model_picker)
        left.addWidget(model_card)
        method_card = Card("How to fine-tune", "Pick a row. LoRA suits most cases.")
        self.methods = MethodTable()
        self.methods.methodChosen.connect(self.controller.set_method)
        method_card.body.addWidget(self.methods)
        left.addWidget(method_card)
        hardware_card = Card("Will it fit?")
        self.hardware = HardwarePanel(self.controller)
        hardware_card.body.addWidget(self.hardware)
        left.addWidget(hardware_card)
        left.addStretch(1)
        columns.addLayout(left, 3)

        right = QVBoxLayout()
        right.setSpacing(12)
        objective_card = Card("What to teach")
        self.objective = ObjectiveChoice()
        self.objective.objectiveChosen.connect(lambda name: self.controller.set_value("training.objective", name))
        objective_card.body.addWidget(self.objective)
        right.addWidget(objective_card)
        plan_card = Card("Training plan")
        self.plan = PlanPanel(self.controller, self.hardware)
        plan_card.body.addWidget(self.plan)
        # The plan's sentences never shrink below their height: the settings list below scrolls instead.
        for card in (objective_card, plan_card):
            card.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        right.addWidget(plan_card)
        settings_card = Card("Settings")
        # The settings list scrolls, so it is the one to give up height. A word-wrapped title would make this
        # card height-for-width, and a vertical QBoxLayout holds such an item at its preferred height (the
        # whole list, ~340 px) as if that were its minimum: at 1280x800 the column then squeezed the plan's
        # sentences instead. Unwrapped, the card's minimum is its title and a few rows of the list.
        settings_card.title.setWordWrap(False)
        self.form = SettingsForm(self.controller)
        for key, text in (("training.epochs", "Passes over the data"), ("training.lr", "Learning rate"),
                          ("training.batch_size", "Examples per step"), ("data.max_length", "Maximum length"),
                          ("method.lora_r", "LoRA rank"), ("method.lora_alpha", "LoRA scale"),
                          ("method.lora_dropout", "LoRA dropout"), ("method.num_virtual_tokens", "Virtual tokens"),
                          ("training.beta", "Preference strength"),
                          ("training.early_stopping_patience", "Stop early after"),
                          ("training.warmup_ratio", "Warm-up share"), ("training.scheduler", "Rate schedule"),
                          ("training.max_steps", "Step limit (0: none)"), ("training.precision", "Number format"),
                          ("training.seed", "Random seed")):
            self.form.add(key, text)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(self.form)
        scroll.setStyleSheet("QScrollArea, QScrollArea > QWidget > QWidget { background: white; }")
        settings_card.body.addWidget(scroll)
        right.addWidget(settings_card, 1)
        columns.addLayout(right, 2)
        root.addLayout(columns, 1)

    def _on_config_changed(self, key: str) -> None:
        if key in ("", "training.plan"):
            custom = self.controller.config.training.plan != "auto"
            for dotted in PLANNED_KEYS:
                self.form.set_row_visible(dotted, custom)
        if key in ("", "method.name"):
            method = self.controller.config.method.name
            self.methods.set_method(method)
            for dotted in LORA_KEYS:
                self.form.set_row_visible(dotted, method in ("lora", "qlora"))
            for dotted in VIRTUAL_TOKEN_KEYS:
                self.form.set_row_visible(dotted, method in ("prefix", "prompt"))
        if key in ("", "training.objective"):
            objective = self.controller.config.training.objective
            self.objective.set_objective(objective)
            for dotted in PREFERENCE_KEYS:
                self.form.set_row_visible(dotted, objective != "sft")
            self._on_dataset_changed()

    def _on_dataset_changed(self) -> None:
        report = self.controller.report
        self.objective.set_data_format(report.format if report is not None else None)

    # --- config files ------------------------------------------------------------------------
    def yaml_text(self) -> str:
        """The current config exactly as `tunesmith-cli train --config` reads it."""
        return cfg.dump_yaml(self.controller.build_config())

    def show_yaml(self) -> QDialog:
        """Show the config as YAML in a dialog with a Copy button; returns the (non-modal) dialog."""
        dialog = QDialog(self)
        dialog.setWindowTitle("This setup as a config file")
        dialog.resize(560, 640)
        layout = QVBoxLayout(dialog)
        layout.addWidget(label("Save this as a .yaml file and run it without the window:\n"
                               "tunesmith-cli train --config FILE", "hint"))
        text = QPlainTextEdit(self.yaml_text())
        text.setReadOnly(True)
        text.setStyleSheet("font-family: 'DejaVu Sans Mono', monospace;")
        layout.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(text.toPlainText()))
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.show()
        self.yaml_dialog = dialog
        return dialog

    def save_config(self, path: str = "") -> None:
        """Save the config as YAML (asks where when no path is given)."""
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save config", "tunesmith.yaml", YAML_FILTER)
        if path:
            cfg.save(self.controller.build_config(), path)
            self.controller.say(f"Saved the config to {path}")

    def open_config(self, path: str = "") -> None:
        """Load a YAML config into the window (asks which when no path is given)."""
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open config", "", YAML_FILTER)
        if not path:
            return
        try:
            config = cfg.load(path)
        except cfg.ConfigError as exc:
            QMessageBox.warning(self, "This config cannot be used", str(exc))
            return
        self.controller.set_config(config)
        self.model_picker.resolve_current()
        self.controller.say(f"Opened {path}")
