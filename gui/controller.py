"""The window's shared state: the run configuration being edited and the dataset being looked at.

Every view gets the same `Controller` and talks to the others only through it:

- the Dataset and Method views edit `controller.config` through `set_value` / `set_config`;
- the Training view calls `build_config()` when the user presses Train;
- the Evaluation view listens to `runSelected` (and the Training view emits it when a run ends).

It holds no Qt widgets and imports no ML libraries, so it is cheap to create in tests:
`Controller()` starts from the defaults, `Controller(RunConfig(...))` from a given config.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QObject, Signal

from engine import config as cfg
from engine.config import RunConfig


class Controller(QObject):
    """Holds the current `RunConfig`, the current dataset report and the selected run.

    Signals:
        configChanged(str): a setting changed; the argument is its dotted key ("training.lr"),
            or "" when the whole config was replaced.
        datasetChanged(): a new dataset report (or None: no usable dataset) is available.
        lengthsChanged(): the token lengths of the dataset's examples (or a sample of them) are known.
        runSelected(str): a run folder was chosen (a finished training run, or one opened by the user).
        statusMessage(str): a short plain-words message for the window's status bar.
        busyChanged(bool): a long job (training, model preparation) started or ended;
            views may disable controls that would interfere.
    """

    configChanged = Signal(str)
    datasetChanged = Signal()
    runSelected = Signal(str)
    statusMessage = Signal(str)
    busyChanged = Signal(bool)
    lengthsChanged = Signal()

    def __init__(self, config: Optional[RunConfig] = None, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._config = config if config is not None else RunConfig()
        self._report: Any = None  # engine.data.inspect.DatasetReport, or None
        self._lengths: list[int] = []  # full tokens per example (a sample for large files)
        self._pair_answers: list[tuple[int, int]] = []  # preference data: answer tokens of each measured pair
        self._model_dir: str = ""  # the resolved Hugging Face folder of config.model.name, once known
        self._run_dir: str = ""
        self._busy = False

    # --- configuration -------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The live config the views edit. Read freely; change it through set_value/set_config."""
        return self._config

    def get_value(self, dotted: str) -> Any:
        """Read one setting by its dotted key, e.g. get_value('training.lr')."""
        if dotted == "out":
            return self._config.out
        section, _, name = dotted.partition(".")
        return getattr(getattr(self._config, section), name)

    def set_value(self, dotted: str, value: Any) -> None:
        """Change one setting (converted to the field's type); emits configChanged(dotted) if it changed.

        Raises engine.config.ConfigError with a plain-words message when the value cannot be used.
        """
        before = self.get_value(dotted)
        cfg.set_value(self._config, dotted, value, source="window")
        if self.get_value(dotted) != before:
            if dotted == "model.name":
                self._model_dir = ""
            self.configChanged.emit(dotted)

    def set_method(self, method: str) -> None:
        """Switch the training method and take its default learning rate."""
        if method == self._config.method.name:
            return
        cfg.apply_method_defaults(self._config, method)
        self.configChanged.emit("method.name")
        self.configChanged.emit("training.lr")

    def set_config(self, config: RunConfig) -> None:
        """Replace the whole config (opened from a file, restored from the last session)."""
        model_changed = config.model.name != self._config.model.name
        self._config = config
        if model_changed:
            self._model_dir = ""
        self.configChanged.emit("")

    def build_config(self) -> RunConfig:
        """An independent copy of the config to hand to a run; later edits do not change it.

        The copy is what `tunesmith-cli train --config` would read from `engine.config.dump_yaml`.
        Validation is the caller's job (`engine.config.validate`), so it can show the messages.
        """
        return copy.deepcopy(self._config)

    def problems(self) -> list:
        """engine.config.check() of the current config: errors and warnings as Problem objects."""
        return cfg.check(self._config)

    # --- model ---------------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        """The Hugging Face folder for config.model.name, or "" until the Method view resolved it."""
        return self._model_dir

    def set_model_dir(self, folder: str | Path) -> None:
        """Record the folder the current model resolved to (a tokenizer and estimates need it)."""
        folder = str(folder or "")
        if folder != self._model_dir:
            self._model_dir = folder
            self.configChanged.emit("model.dir")

    # --- dataset -------------------------------------------------------------------------
    @property
    def report(self) -> Any:
        """The engine.data.inspect.DatasetReport of config.data.path, or None."""
        return self._report

    def set_report(self, report: Any) -> None:
        """Publish the inspection of the current dataset (None when it could not be read)."""
        self._report = report
        self._lengths, self._pair_answers = [], []
        self.datasetChanged.emit()

    @property
    def lengths(self) -> list[int]:
        """Full tokens per example of the current dataset, before cutting ([] until measured); the plan is
        made from them."""
        return self._lengths

    @property
    def pair_answers(self) -> list[tuple[int, int]]:
        """Preference data: (chosen, rejected) answer tokens of each measured pair, in the order of `lengths`."""
        return self._pair_answers

    def set_lengths(self, lengths, pair_answers=()) -> None:
        self._lengths = list(lengths)
        self._pair_answers = list(pair_answers)
        self.lengthsChanged.emit()

    # --- runs ----------------------------------------------------------------------------
    @property
    def run_dir(self) -> str:
        """The run folder selected last ("" when none)."""
        return self._run_dir

    def select_run(self, run_dir: str | Path) -> None:
        """Make a run folder the current one; the Evaluation view follows via runSelected."""
        self._run_dir = str(run_dir)
        self.runSelected.emit(self._run_dir)

    # --- busy / status -------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    def set_busy(self, busy: bool) -> None:
        """Say that a long job started (True) or ended (False)."""
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def say(self, message: str) -> None:
        """Show a short message in the status bar."""
        self.statusMessage.emit(message)
