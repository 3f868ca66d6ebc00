"""Choose the base model: the built-in starter, a local folder, a GGUF file, or a Hugging Face hub id.

Whatever is chosen is turned into a Hugging Face folder by `engine.models.resolve_model`, in the engine
helper process (it may import torch) and waited for on a pool thread (preparing the starter or importing
a GGUF file can take a minute), with a progress dialog, so the window never freezes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QProgressDialog, QPushButton,
                               QVBoxLayout, QWidget)

from gui.controller import Controller
from gui.style import label
from gui.engine_helper import helper
from gui.widgets.background import LatestJob

SOURCES = [
    ("starter", "Starter model (built in): SmolLM2-135M-Instruct, a 4-bit Q4_1 copy expanded to full precision"),
    ("folder", "A model folder on this computer"),
    ("gguf", "A GGUF file (converted once)"),
    ("hub", "A Hugging Face hub id (needs internet)"),
]


def source_of(spec: str) -> str:
    """Which kind of model a config's model.name is."""
    spec = (spec or "starter").strip()
    if spec.lower() in ("starter", "smollm2-135m-instruct"):
        return "starter"
    if spec.lower().endswith(".gguf"):
        return "gguf"
    if Path(spec).expanduser().exists() or spec.startswith(("/", "~", ".")):
        return "folder"
    return "hub"


def _resolve(spec: str, progress) -> dict:
    """Runs on a pool thread: the model's folder and a short description of it, from the engine helper
    process (converting a GGUF file or the starter imports torch and transformers)."""
    return helper().call("resolve_model", spec, lane="model", progress=progress)


def describe_ready(info: dict) -> tuple[str, Optional[str]]:
    """(what the status lines say about a ready model, a plain warning or None). Short lines: they do not wrap."""
    from engine.model_facts import unverified_warning

    millions = info["parameters"] / 1e6
    size = f"{millions:,.0f} million" if millions >= 1 else f"{millions:.2f} million"
    template = "has its own chat template" if info["has_chat_template"] else "no chat template (a base model)"
    text = (f"Ready: {info['name']}, {info['family']} family, {size} parameters.\n"
            f"Stored as {info['stored_precision']}; {template}.\n{info['folder']}")
    return text, None if info["verified"] else unverified_warning(info["family"])


class ModelPicker(QWidget):
    """Emits modelReady(folder) when the chosen model is usable, modelFailed(message) when not."""

    modelReady = Signal(str)
    modelFailed = Signal(str)

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self._dialog: Optional[QProgressDialog] = None
        self._job = LatestJob(self)
        self._job.finished.connect(self._on_ready)
        self._job.failed.connect(self._on_failed)
        self._job.progress.connect(self._on_progress)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.source = QComboBox()
        for key, text in SOURCES:
            self.source.addItem(text, key)
        self.source.activated.connect(self._on_source_chosen)
        layout.addWidget(self.source)
        row = QHBoxLayout()
        self.location = QLineEdit()
        self.location.setPlaceholderText("Folder, .gguf file or hub id such as HuggingFaceTB/SmolLM2-360M-Instruct")
        self.location.returnPressed.connect(self.use_location)
        row.addWidget(self.location, 1)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        row.addWidget(self.browse)
        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self.use_location)
        row.addWidget(self.use_button)
        layout.addLayout(row)
        self.warning = label("", "warning")
        self.warning.hide()
        layout.addWidget(self.warning)
        self.status = label("", "hint")
        # A word-wrapped label asks for one line at least; the Method view's crowded left column then
        # squeezed "Ready: <name>" and the folder below it to half a line each (seen at 1280x800).
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        layout.addWidget(self.status)
        controller.configChanged.connect(self._on_config_changed)
        self._show_spec(controller.config.model.name)

    # --- choosing --------------------------------------------------------------------------
    def _show_spec(self, spec: str) -> None:
        kind = source_of(spec)
        self.source.setCurrentIndex(self.source.findData(kind))
        self.location.setText("" if kind == "starter" else spec)
        self._update_inputs()

    def _update_inputs(self) -> None:
        kind = self.source.currentData()
        self.location.setVisible(kind != "starter")
        self.browse.setVisible(kind in ("folder", "gguf"))
        self.use_button.setVisible(kind != "starter")

    def _on_source_chosen(self) -> None:
        self._update_inputs()
        if self.source.currentData() == "starter":
            self.choose("starter")
        else:
            self.location.clear()
            self.location.setFocus()

    def _browse(self) -> None:
        if self.source.currentData() == "gguf":
            path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF file", "", "GGUF models (*.gguf)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if path:
            self.location.setText(path)
            self.use_location()

    def use_location(self) -> None:
        """Use what is typed in the location box."""
        spec = self.location.text().strip()
        if not spec:
            self.status.setText("Type a folder, a .gguf file or a hub id first.")
            return
        self.choose(spec)

    def choose(self, spec: str) -> None:
        """Make `spec` the model (config.model.name) and prepare it."""
        self.controller.set_value("model.name", spec)
        self.resolve_current()

    def resolve_current(self) -> None:
        """Turn the configured model into a folder in the background (with a progress dialog if slow)."""
        spec = self.controller.config.model.name
        self.status.setText("Getting the model ready…")
        self.controller.set_busy(True)
        self._dialog = QProgressDialog("Getting the model ready…", "", 0, 100, self.window())
        self._dialog.setWindowTitle("Preparing the model")
        self._dialog.setCancelButton(None)  # conversion cannot be interrupted safely; it is done once
        self._dialog.setWindowModality(Qt.WindowModal)
        self._dialog.setMinimumDuration(600)  # only shown when the model is not ready at once
        self._dialog.setAutoClose(False)
        self._dialog.setValue(0)
        self._job.submit(lambda progress: _resolve(spec, progress), with_progress=True)

    # --- results ---------------------------------------------------------------------------
    def _on_progress(self, message: str, fraction: float) -> None:
        self.status.setText(message)
        if self._dialog is not None:
            self._dialog.setLabelText(message)
            self._dialog.setValue(int(max(0.0, min(1.0, fraction)) * 100))

    def _close_dialog(self) -> None:
        if self._dialog is not None:
            self._dialog.close()
            self._dialog.deleteLater()
            self._dialog = None
        self.controller.set_busy(False)

    def _on_ready(self, info: dict) -> None:
        self._close_dialog()
        text, warning = describe_ready(info)
        self._set_status_role("hint")
        self.status.setText(text)
        self._show_warning(warning)
        self.controller.set_model_dir(info["folder"])
        self.controller.say(f"Model ready: {info['name']}")
        self.modelReady.emit(info["folder"])

    def _on_failed(self, message: str) -> None:
        self._close_dialog()
        self._show_warning(None)
        self.status.setText(message)
        self._set_status_role("error")
        self.controller.set_model_dir("")
        self.modelFailed.emit(message)

    def _on_config_changed(self, key: str) -> None:
        if key in ("", "model.name"):
            self._show_spec(self.controller.config.model.name)
            self._set_status_role("hint")

    def _show_warning(self, text: Optional[str]) -> None:
        """A family outside the compatibility matrix gets a plain warning above the model's facts."""
        self.warning.setText(text or "")
        self.warning.setVisible(bool(text))
        if text:  # a wrapped label reports one line's height until it knows its width
            self.warning.setMinimumHeight(self.warning.heightForWidth(max(200, self.width() - 4)))

    def _set_status_role(self, role: str) -> None:
        self.status.setProperty("role", role)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
