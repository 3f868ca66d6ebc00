"""Which device training will use, said in the Method view; where an NVIDIA card is present but cannot be
used, why in plain words and what to do, with a button when Tunesmith can fix it itself (GPU support).

The window never imports torch: nvidia-smi is read on a pool thread, and only where it finds a card is
torch asked (engine.gpu_check.probe_in_child, a spawned child, a few seconds).
"""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from engine import gpu_check
from engine.gpu_check import DeviceReport, SmiFacts
from gui.style import label
from gui.widgets.background import LatestJob


class DeviceStatus(QWidget):
    """Shows a DeviceReport. `set_card(smi)` starts the check; deviceChanged("cuda"|"cpu") reports the outcome."""

    deviceChanged = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None, *, probe: Optional[Callable[[], dict]] = None):
        super().__init__(parent)
        self.smi: Optional[SmiFacts] = None
        self.facts: Optional[dict] = None
        self.need_bytes: Optional[int] = None
        self.cpu = "the processor"
        self.report: Optional[DeviceReport] = None
        self._told = ""  # the device last announced with deviceChanged
        self._probe = probe or (lambda: gpu_check.probe_in_child())  # looked up late: tests replace it
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = label("Looking at this computer…", "subtitle")
        layout.addWidget(self.summary)
        row = QHBoxLayout()  # the problem and, where Tunesmith can fix it, the button side by side
        self.problem = label("", "warning")
        self.problem.setVisible(False)
        row.addWidget(self.problem, 1)
        self.install_button = QPushButton("Install GPU support…")
        self.install_button.setVisible(False)
        self.install_button.clicked.connect(self.open_installer)
        row.addWidget(self.install_button)
        layout.addLayout(row)
        self._job = LatestJob(self)
        self._job.finished.connect(self._on_facts)
        self._job.failed.connect(lambda message: self._on_facts({"cuda_build": "?", "error": message}))

    def set_card(self, smi: Optional[SmiFacts], cpu: str) -> None:
        """The nvidia-smi facts (None: no NVIDIA card) and a short name of the processor."""
        self.smi, self.cpu = smi, cpu
        if smi is None:
            self._on_facts({})
        else:
            self.facts = None
            self._show()
            self._job.submit(self._probe)

    def recheck(self) -> None:
        """Ask torch again (after GPU support was installed)."""
        self.set_card(self.smi, self.cpu)

    def set_need(self, need_bytes: Optional[int]) -> None:
        """The memory the chosen training needs, so that a card too full for it is named."""
        self.need_bytes = need_bytes
        if self.facts is not None:
            self._show()

    def _on_facts(self, facts: dict) -> None:
        self.facts = facts
        self._show()

    def _show(self) -> None:
        report = gpu_check.diagnose(self.smi, self.facts, self.need_bytes, self.cpu)
        self.report = report
        self.summary.setText(report.summary)
        text = "\n".join(part for part in (report.problem, report.action) if part)
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        self.install_button.setVisible(report.fix == "install-gpu-support")
        if self.facts is not None and report.device != self._told:
            self._told = report.device
            self.deviceChanged.emit(report.device)

    def open_installer(self):
        from gui.gpu_install_dialog import GpuInstallDialog

        dialog = GpuInstallDialog(self.window())
        dialog.installed.connect(self.recheck)
        dialog.show()
        self.installer = dialog
        return dialog
