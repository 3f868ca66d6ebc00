"""The Data folder window: where Tunesmith keeps everything, the size of each part, moving it to another
drive (copy, verify, switch: engine.storage), the applications-menu entry, and how to remove it all."""
from __future__ import annotations

import shutil
from typing import Optional

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QGridLayout, QHBoxLayout, QMessageBox,
                               QProgressDialog, QPushButton, QVBoxLayout, QWidget)

from engine import desktop, download, gpu_runtime, paths, storage
from gui.controller import Controller
from gui.style import label
from gui.widgets.background import LatestJob

REMOVE_HELP = ("To remove Tunesmith completely: remove the menu entry here, quit, delete this data folder and "
               "the Tunesmith program folder. `tunesmith-cli data --remove-all` does the first three at once.")


class StorageDialog(QDialog):
    """Emits moved(new_root) after the data folder was moved."""

    moved = Signal(str)

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Tunesmith's data folder")
        self.resize(620, 420)
        self.parts: list[storage.Part] = []
        layout = QVBoxLayout(self)
        layout.addWidget(label("Everything Tunesmith writes (models, training runs, GPU support) is kept in one "
                               "folder:", "hint"))
        row = QHBoxLayout()
        self.folder = label("", "subtitle")
        row.addWidget(self.folder, 1)
        open_button = QPushButton("Open")
        open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.data_dir()))))
        row.addWidget(open_button)
        self.move_button = QPushButton("Move to another folder…")
        self.move_button.clicked.connect(self.choose_and_move)
        row.addWidget(self.move_button)
        layout.addLayout(row)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(24)
        layout.addLayout(self.grid)
        self.free = label("", "hint")
        layout.addWidget(self.free)

        actions = QHBoxLayout()
        self.gpu_button = QPushButton("Remove GPU support")
        self.gpu_button.clicked.connect(self.remove_gpu_support)
        actions.addWidget(self.gpu_button)
        self.menu_button = QPushButton()
        self.menu_button.clicked.connect(self.toggle_menu_entry)
        self.menu_button.setVisible(desktop.supported())
        actions.addWidget(self.menu_button)
        actions.addStretch(1)
        layout.addLayout(actions)
        layout.addWidget(label(REMOVE_HELP, "hint"))
        layout.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self._sizes = LatestJob(self)
        self._sizes.finished.connect(self._show_sizes)
        self._move = LatestJob(self)
        self._move.progress.connect(self._on_move_progress)
        self._move.finished.connect(self._on_moved)
        self._move.failed.connect(self._on_move_failed)
        self._progress: Optional[QProgressDialog] = None
        controller.busyChanged.connect(self._update_buttons)
        self.refresh()

    # --- showing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        self.folder.setText(str(paths.data_dir()))
        self._update_buttons()
        self._sizes.submit(storage.usage)

    def _show_sizes(self, parts: list) -> None:
        self.parts = parts
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        for row, part in enumerate(parts + [storage.Part("total", "Total", paths.data_dir(),
                                                         sum(p.size_bytes for p in parts))]):
            role = "subtitle" if part.key == "total" else ""
            self.grid.addWidget(label(part.label, role), row, 0)
            size = label(download.human_bytes(part.size_bytes) if part.size_bytes else "empty", role)
            size.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.grid.addWidget(size, row, 1)
        self.free.setText(f"{download.human_bytes(shutil.disk_usage(paths.data_dir()).free)} free on this drive.")

    def _update_buttons(self, *_args) -> None:
        busy = self.controller.busy or self._move.running
        self.move_button.setEnabled(not busy)
        self.move_button.setToolTip("Wait until training has finished." if self.controller.busy else "")
        self.gpu_button.setVisible(gpu_runtime.installed() is not None)
        self.gpu_button.setEnabled(not busy)
        self.menu_button.setText("Remove from the applications menu" if desktop.installed_program()
                                 else "Add to the applications menu")

    # --- actions ---------------------------------------------------------------------------
    def choose_and_move(self, target: str = "") -> None:
        if not target:
            target = QFileDialog.getExistingDirectory(self, "Move the data folder to")
        if not target:
            return
        total = sum(p.size_bytes for p in self.parts)
        answer = QMessageBox.question(self, "Move the data folder",
                                      f"Copy {download.human_bytes(total)} to {target}, check every file, switch to "
                                      "it, then delete the old copy?")
        if answer == QMessageBox.Yes:
            self.move_to(target)

    def move_to(self, target: str) -> None:
        """Move without asking (the confirmation is choose_and_move's)."""
        self.controller.set_busy(True)
        self._progress = QProgressDialog("Copying…", "", 0, 100, self)
        self._progress.setWindowTitle("Moving the data folder")
        self._progress.setCancelButton(None)  # a half-copied move is undone, but not mid-file
        self._progress.setMinimumDuration(300)
        self._move.submit(lambda progress: str(storage.move_data(target, progress)), with_progress=True)
        self._update_buttons()

    def _on_move_progress(self, message: str, fraction: float) -> None:
        if self._progress is not None:
            self._progress.setLabelText(message)
            self._progress.setValue(int(fraction * 100))

    def _end_move(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.controller.set_busy(False)

    def _on_moved(self, root: str) -> None:
        self._end_move()
        self.refresh()
        self.controller.say(f"The data folder is now {root}")
        self.moved.emit(root)

    def _on_move_failed(self, message: str) -> None:
        self._end_move()
        self.refresh()
        QMessageBox.warning(self, "The data folder was not moved", message)

    def remove_gpu_support(self) -> None:
        gpu_runtime.remove()
        self.refresh()

    def toggle_menu_entry(self) -> None:
        try:
            if desktop.installed_program():
                desktop.remove_entry()
            else:
                desktop.install_entry()
        except OSError as exc:
            QMessageBox.warning(self, "The menu entry could not be changed", str(exc))
        self._update_buttons()
