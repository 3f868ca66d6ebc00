"""Install GPU support (engine.gpu_runtime) from the window: what it is, its size and time, then progress.

The plan (which files, their sizes) is read from the package index first, so the user sees exactly
how much is downloaded and how much disk it takes before agreeing. The download can be cancelled;
nothing half-installed is ever used.
"""
from __future__ import annotations

import shutil
import threading
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QProgressBar, QPushButton, QVBoxLayout, QWidget

from engine import download, gpu_runtime, paths
from gui.style import label
from gui.widgets.background import LatestJob


class GpuInstallDialog(QDialog):
    """Emits installed() once GPU support is in place."""

    installed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Install GPU support")
        self.resize(560, 260)
        self.plan: Optional[gpu_runtime.Plan] = None
        self._cancel = threading.Event()
        layout = QVBoxLayout(self)
        layout.addWidget(label("Tunesmith came with the processor-only PyTorch. GPU support is the CUDA build of "
                               "the same PyTorch and NVIDIA's libraries, downloaded once from PyPI (each file's "
                               "published sha256 checked) into Tunesmith's data folder. Remove it any time from "
                               "the Data folder window.", "hint"))
        self.text = label("Finding out what is needed…")
        layout.addWidget(self.text)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        self.buttons = QDialogButtonBox()
        self.install_button = QPushButton("Install")
        self.install_button.setEnabled(False)
        self.buttons.addButton(self.install_button, QDialogButtonBox.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.Cancel)
        self.install_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.cancel_or_close)
        layout.addWidget(self.buttons)
        self._plan_job = LatestJob(self)
        self._plan_job.finished.connect(self._on_plan)
        self._plan_job.failed.connect(self._on_failed)
        self._install_job = LatestJob(self)
        self._install_job.progress.connect(self._on_progress)
        self._install_job.finished.connect(self._on_installed)
        self._install_job.failed.connect(self._on_failed)
        self._plan_job.submit(gpu_runtime.plan)

    def _on_plan(self, plan: gpu_runtime.Plan) -> None:
        self.plan = plan
        free = shutil.disk_usage(paths.data_dir()).free
        self.text.setText(f"GPU support for PyTorch {gpu_runtime.torch_version()}: {len(plan.files)} files, "
                          f"{plan.describe()}.\nThe data folder's drive has {download.human_bytes(free)} free.")
        self.install_button.setEnabled(True)

    def start(self) -> None:
        if self.plan is None:
            return
        self.install_button.setEnabled(False)
        self.progress.setVisible(True)
        plan, cancelled = self.plan, self._cancel.is_set
        self._install_job.submit(lambda progress: gpu_runtime.install(plan, progress, cancelled), with_progress=True)

    def _on_progress(self, message: str, fraction: float) -> None:
        self.text.setText(message)
        self.progress.setValue(int(fraction * 1000))

    def _on_installed(self, _folder) -> None:
        self.progress.setValue(1000)
        self.text.setText("GPU support is installed. Training started from now on uses the graphics card.")
        self.close_button.setText("Close")
        self.installed.emit()

    def _on_failed(self, message: str) -> None:
        self.progress.setVisible(False)
        self.text.setText(message)
        self.text.setProperty("role", "error")
        self.text.style().polish(self.text)
        self.install_button.setEnabled(self.plan is not None and not self._cancel.is_set())
        self.close_button.setText("Close")

    def cancel_or_close(self) -> None:
        if self._install_job.running:
            self._cancel.set()  # the download stops after its current megabyte and cleans up
            self.text.setText("Cancelling…")
        else:
            self.reject()
