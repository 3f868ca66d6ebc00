"""The Export dialog: take a trained run to where it will be used, in one click.

The export itself (engine.export.export_run) runs in a child process through ProcessHost, like
training, so merging or writing a GGUF file never freezes the window.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QHBoxLayout, QLineEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from engine.events import Event, Failed, Finished, Notice, Progress
from gui.process_host import ProcessHost
from gui.style import label

# target -> (menu text, one plain sentence); the names are engine.export.EXPORT_TARGETS.
EXPORT_CHOICES = {
    "merged": ("Merged model (Hugging Face folder)",
               "The tuning folded into the model: one folder any transformers program loads."),
    "gguf-q8_0": ("GGUF, 8-bit (llama.cpp, LM Studio, Ollama)",
                  "A single file about half the size, for llama.cpp, LM Studio and Ollama (a Modelfile is "
                  "written beside it). Llama-family models only, the starter model included."),
    "gguf-f16": ("GGUF, 16-bit (llama.cpp, LM Studio, Ollama)",
                 "The same single file at full quality, twice as big as 8-bit. Llama-family models only."),
    "adapter": ("Adapter only (small, needs the base model)",
                "Just what was learned (a few MB), in the standard PEFT layout, with the chat template used."),
}
EXPORT_TARGET = "engine.worker:export_main"


class ExportDialog(QDialog):
    """Choose a format and a destination, watch the progress, then open the folder."""

    def __init__(self, run_dir: str, parent: Optional[QWidget] = None, *, target: str = EXPORT_TARGET):
        super().__init__(parent)
        self.run_dir = run_dir
        self.target = target
        self.host: Optional[ProcessHost] = None
        self.result_path = ""
        self.setWindowTitle(f"Export {Path(run_dir).name}")
        self.setMinimumWidth(560)
        self._build()

    def _build(self) -> None:
        column = QVBoxLayout(self)
        column.addWidget(label("Export the tuned model", "subtitle"))
        self.format_box = QComboBox()
        for name, (text, _sentence) in EXPORT_CHOICES.items():
            self.format_box.addItem(text, name)
        self.format_box.currentIndexChanged.connect(self._on_format_changed)
        column.addWidget(self.format_box)
        self.explanation = label("", "hint")
        column.addWidget(self.explanation)
        row = QHBoxLayout()
        self.destination = QLineEdit()
        self.destination.setPlaceholderText("Where to write it")
        row.addWidget(self.destination, 1)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_destination)
        row.addWidget(browse)
        column.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        column.addWidget(self.progress)
        self.status = label("", "hint")
        column.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.open_button = QPushButton("Open folder")
        self.open_button.setVisible(False)
        self.open_button.clicked.connect(self.open_folder)
        buttons.addWidget(self.open_button)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.close_button)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.setObjectName("primary")
        self.export_button.clicked.connect(self._export_or_stop)
        buttons.addWidget(self.export_button)
        column.addLayout(buttons)
        self._on_format_changed()

    def chosen_format(self) -> str:
        return self.format_box.currentData()

    def _default_destination(self) -> str:
        suffix = ".gguf" if self.chosen_format().startswith("gguf") else ""
        return str(Path(self.run_dir) / "export" / f"{Path(self.run_dir).name}-{self.chosen_format()}{suffix}")

    def _on_format_changed(self) -> None:
        self.explanation.setText(EXPORT_CHOICES[self.chosen_format()][1])
        current = self.destination.text()
        if not current or current.startswith(str(Path(self.run_dir) / "export")):
            self.destination.setText(self._default_destination())

    def _choose_destination(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into which folder?", str(Path(self.run_dir)))
        if folder:
            name = Path(self._default_destination()).name
            self.destination.setText(str(Path(folder) / name))

    def _export_or_stop(self) -> None:
        if self.host is not None:
            self.host.request_stop()
            self.status.setText("Cancelling; nothing half-written will be left behind…")
            return
        self.start_export()

    def start_export(self) -> None:
        """Run the export in a child process; progress and the result appear here."""
        out = self.destination.text().strip()
        if not out:
            self.status.setText("Choose where to write the export first.")
            return
        self.result_path = ""
        self.open_button.setVisible(False)
        self.host = ProcessHost(self.target, args=(self.run_dir, self.chosen_format(), out), name="export",
                                stop_grace_s=30.0, parent=self)
        self.host.eventReceived.connect(self._on_event)
        self.host.ended.connect(self._on_ended)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.export_button.setText("Cancel export")
        self.status.setText("Starting the export…")
        self.host.start()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress.setValue(event.step)
        elif isinstance(event, Notice):
            self.status.setText(event.message)

    def _on_ended(self, outcome: Optional[Event]) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.wait(2000)
            host.deleteLater()
        self.progress.setVisible(False)
        self.export_button.setText("Export")
        if isinstance(outcome, Finished):
            self.result_path = outcome.output_path
            self.status.setText(f"Exported to {outcome.output_path}")
            self.open_button.setVisible(True)
        elif isinstance(outcome, Failed):
            self.status.setText(f"The export did not finish: {outcome.reason} {outcome.hint}".strip())
        else:
            self.status.setText("The export ended without a result; nothing was written.")

    def open_folder(self) -> None:
        path = Path(self.result_path)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path if path.is_dir() else path.parent)))

    def reject(self) -> None:  # closing the dialog cancels a running export cleanly
        if self.host is not None:
            self.host.kill_now()
            self.host.wait(10000)
        super().reject()
