"""The main window: four tabs (Dataset, Method, Training, Evaluation), a status bar, and memory.

The window restores the last session's project (dataset, mapping, model, method, settings) and its
own size and tab from `gui.state`, and saves them when closed and shortly after every change.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import (QLabel, QMainWindow, QMessageBox, QPushButton, QScrollArea, QTabWidget, QVBoxLayout,
                               QWidget)

from gui import state
from gui.controller import Controller
from gui.engine_helper import helper
from gui.style import label
from gui.views.dataset_view import DatasetView
from gui.views.method_view import MethodView

TAB_NAMES = ("Dataset", "Method", "Training", "Evaluation")


def _optional_view(module: str, cls: str, controller: Controller) -> QWidget:
    """The Training/Evaluation views (another module's work); a plain note if they are not installed."""
    try:
        view_class = getattr(importlib.import_module(f"gui.views.{module}"), cls)
    except (ImportError, AttributeError):
        page = QWidget()
        page.setObjectName("page")
        layout = QVBoxLayout(page)
        layout.addWidget(label(f"The {cls.replace('View', '')} view is not part of this build.", "hint"))
        layout.addStretch(1)
        return page
    return view_class(controller)


class _FitScrollArea(QScrollArea):
    """Fills the tab with its view, and scrolls only when the tab is smaller than the view's minimum.

    (QScrollArea's own widgetResizable gives a view with word-wrapped labels its *preferred* height,
    which scrolls even when everything would fit.)
    """

    def __init__(self, view: QWidget):
        super().__init__()
        self.setFrameShape(QScrollArea.NoFrame)
        self.setWidget(view)
        view.installEventFilter(self)  # its minimum changes when, say, warnings appear

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt naming
        if watched is self.widget() and event.type() == QEvent.LayoutRequest:
            self._fit()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        view = self.widget()
        minimum = view.minimumSizeHint().expandedTo(view.minimumSize())
        space = self.viewport().size()
        width = max(minimum.width(), space.width())
        height = minimum.height()
        layout = view.layout()
        if layout is not None and layout.hasHeightForWidth():
            # Word-wrapped labels (the warnings) need more height at this width than minimumSizeHint says;
            # without this the rest of the view is squeezed below its minimum and its controls overlap.
            height = max(height, layout.totalMinimumHeightForWidth(width))
        view.resize(width, max(height, space.height()))


class MainWindow(QMainWindow):
    """The Tunesmith window. `prepare_model=False` skips getting the model ready (tests, smoke test)."""

    def __init__(self, controller: Optional[Controller] = None, *, prepare_model: bool = True,
                 restore: bool = True, offer_menu_entry: bool = True):
        super().__init__()
        self.setWindowTitle("Tunesmith")
        saved = state.load_state() if restore else {}
        self._menu_entry_offered = bool(saved.get("menu_entry_offered"))  # asked once, ever
        if controller is None:
            controller = Controller(state.load_config(saved) if restore else state.default_config())
        self.controller = controller
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.dataset_view = DatasetView(controller)
        self.method_view = MethodView(controller)
        self.training_view = _optional_view("training_view", "TrainingView", controller)
        self.evaluation_view = _optional_view("evaluation_view", "EvaluationView", controller)
        for view, name in zip((self.dataset_view, self.method_view, self.training_view, self.evaluation_view),
                              TAB_NAMES):
            self.tabs.addTab(_FitScrollArea(view), name)
        self.setCentralWidget(self.tabs)
        self.method_view.continueRequested.connect(lambda: self.tabs.setCurrentIndex(TAB_NAMES.index("Training")))
        self.training_view.chatRequested.connect(lambda _run: self.tabs.setCurrentIndex(TAB_NAMES.index("Evaluation")))

        self.method_view.model_picker.modelFailed.connect(self._on_model_failed)

        self.summary = QLabel()
        self.statusBar().addPermanentWidget(self.summary)
        data_button = QPushButton("Data folder…")
        data_button.setFlat(True)
        data_button.setToolTip("Where Tunesmith keeps models and runs, their sizes; move it, or add a menu entry")
        data_button.clicked.connect(self.open_storage)
        self.statusBar().addPermanentWidget(data_button)
        controller.statusMessage.connect(lambda message: self.statusBar().showMessage(message, 8000))
        controller.configChanged.connect(self._update_summary)
        controller.datasetChanged.connect(self._update_summary)
        self._update_summary()

        # Save shortly after each change too, so a crash or a killed session loses nothing.
        self._save_timer = QTimer(self, singleShot=True, interval=1000)
        self._save_timer.timeout.connect(self.save_state)
        controller.configChanged.connect(lambda _key: self._save_timer.start())

        self.resize(1280, 800)
        self._restore_window(saved)
        if prepare_model:
            QTimer.singleShot(0, self.method_view.model_picker.resolve_current)
        if prepare_model and offer_menu_entry:
            QTimer.singleShot(0, self._offer_menu_entry)

    def open_storage(self):
        """The Data folder window (sizes, moving it, the menu entry)."""
        from gui.storage_dialog import StorageDialog

        dialog = StorageDialog(self.controller, self)
        dialog.moved.connect(self._on_data_moved)
        dialog.show()
        self.storage_dialog = dialog
        return dialog

    def _on_data_moved(self, _root: str) -> None:
        """Models and runs now live elsewhere: find the model and the run list again."""
        self.controller.set_model_dir("")
        self.method_view.model_picker.resolve_current()
        history = getattr(self.training_view, "history", None)
        if history is not None:
            history.refresh()

    def _offer_menu_entry(self) -> None:
        """The desktop program offers its own menu entry once (Linux); a moved program folder is followed."""
        from engine import desktop

        if not (getattr(sys, "frozen", False) and desktop.supported()):
            return
        try:
            if desktop.refresh_entry() or desktop.installed_program() or self._menu_entry_offered:
                return
            self._menu_entry_offered = True
            answer = QMessageBox.question(self, "Add Tunesmith to the applications menu?",
                                          "Start Tunesmith from your applications menu from now on? "
                                          "(Undo it any time in Data folder….)")
            if answer == QMessageBox.Yes:
                desktop.install_entry()
                self.statusBar().showMessage("Tunesmith is in the applications menu now.", 8000)
        except OSError as exc:
            self.statusBar().showMessage(f"The menu entry could not be written: {exc}", 10000)

    def _restore_window(self, saved: dict) -> None:
        size = saved.get("size")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) and n > 200 for n in size):
            self.resize(*size)
        if saved.get("maximized") is True:
            self.setWindowState(self.windowState() | Qt.WindowMaximized)
        tab = saved.get("tab")
        if isinstance(tab, str) and tab in TAB_NAMES:
            self.tabs.setCurrentIndex(TAB_NAMES.index(tab))

    def _on_model_failed(self, message: str) -> None:
        """Without a model there is no tokenizer: say so where the preview would be, and why."""
        self.dataset_view.preview.show_message("The model could not be prepared, so examples cannot be shown as "
                                               f"trained yet. Choose another model in the Method tab.\n\n{message}")
        self.statusBar().showMessage("The model could not be prepared: see the Method tab.", 10000)

    def _update_summary(self, *_args) -> None:
        config = self.controller.config
        model = "starter model" if config.model.name in ("", "starter") else Path(config.model.name).name
        data = Path(config.data.path).name if config.data.path else "no data"
        report = self.controller.report
        count = f" ({report.rows_valid} examples)" if report is not None else ""
        self.summary.setText(f"{data}{count}  ·  {model}  ·  {config.method.name}   ")

    def save_state(self) -> Path:
        """Write the project and the window's size and tab to the state file."""
        # Size and maximised state only: a saved position can fall off a screen that is gone.
        size = self.normalGeometry().size() if self.isMaximized() else self.size()
        extra = {"menu_entry_offered": True} if self._menu_entry_offered else {}
        return state.save_state(self.controller.config, size=[size.width(), size.height()],
                                maximized=self.isMaximized(), tab=TAB_NAMES[self.tabs.currentIndex()], **extra)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._save_timer.stop()
        self.save_state()
        self.method_view.plan.shutdown()
        helper().shutdown()  # the engine helper process, with its loaded tokenizers
        super().closeEvent(event)
