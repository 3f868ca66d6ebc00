"""The training plan before Start: automatic or custom, why, how long on this computer, keep general ability.

The plan itself is engine.train.plan (a pure function, called here on every change); its price in
seconds is engine.train.timing with this machine's rates from the data folder. Where no rates are
stored yet for the model and method, a short calibration runs in a child process
(engine.worker:calibrate_main, about half a minute on a small CPU), never in the window's process.
Whether the base model's general answers are still to be written (part of the price) is the engine's
rule too, asked of the engine helper process: the answer file's name depends on the tokenizer.
"""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QButtonGroup, QCheckBox, QHBoxLayout, QRadioButton, QVBoxLayout, QWidget

from engine import config as cfg
from engine import paths
from engine.train import autoplan, timing
from engine.train.plan import Plan, PlanInputs
from gui.controller import Controller
from gui.engine_helper import helper
from gui.style import label
from gui.widgets.background import LatestJob

# Settings that change the plan or its price; anything else leaves it alone.
PLAN_KEYS = {"", "model.dir", "model.name", "method.name", "method.lora_r", "data.max_length", "data.val_fraction",
             "data.val_max_rows", "data.val_path", "training.plan", "training.keep_general", "training.max_steps",
             "training.epochs", "training.batch_size", "training.lr", "training.warmup_ratio", "training.eval_every",
             "training.precision", "training.threads"}
CALIBRATE_TARGET = "engine.worker:calibrate_main"


def calibration_enabled() -> bool:
    """TUNESMITH_CALIBRATE=0 keeps the window from measuring speed in the background (tests set it)."""
    return os.environ.get("TUNESMITH_CALIBRATE", "1") != "0"


def split_counts(config: cfg.RunConfig, usable: int) -> tuple[int, int]:
    """(training, validation) examples the run will have, as engine.data.split decides."""
    from engine.data.split import part_sizes

    d = config.data
    if d.val_path:  # validation from its own file (its size is not known here), test split off unless given
        _, test = part_sizes(usable, 0.0, 0.0 if d.test_path else d.test_fraction, d.val_max_rows, d.test_max_rows)
        return usable - test, min(usable, d.val_max_rows)
    val, test = part_sizes(usable, d.val_fraction, 0.0 if d.test_path else d.test_fraction, d.val_max_rows,
                           d.test_max_rows)
    return usable - val - test, val


def general_answers_missing(model_dir: str, template: str) -> int:
    """Runs on a pool thread: the general answers a run would still write first (engine.window_jobs).

    The "lengths" lane already holds this model's tokenizer: the estimate needs the lengths anyway."""
    return helper().call("answers_missing", model_dir, template, lane="lengths")


class PlanPanel(QWidget):
    """Shows the plan for the current config, data and hardware; edits training.plan and keep_general.

    `planChanged(object)` carries the latest engine.train.plan.Plan (None without data).
    """

    planChanged = Signal(object)

    def __init__(self, controller: Controller, hardware_panel, parent: Optional[QWidget] = None,
                 calibrate_target: str = CALIBRATE_TARGET):
        super().__init__(parent)
        self.controller, self.hardware_panel = controller, hardware_panel
        self.calibrate_target = calibrate_target
        self.plan: Optional[Plan] = None
        self.estimate: Optional[timing.Estimate] = None
        self._calibrating: Optional[str] = None  # the throughput key being measured
        self._failed_keys: set[str] = set()
        self.host = None
        # (model folder, template) -> general answers still to write, as the engine helper last said
        self._answers: dict[tuple[str, str], int] = {}
        answers_pool = QThreadPool(self)
        answers_pool.setMaxThreadCount(1)  # waits on the helper: never takes a thread the previews need
        self._answers_job = LatestJob(self, pool=answers_pool)
        self._answers_job.finished.connect(self._on_answers)
        self._build()
        self._debounce = QTimer(self, singleShot=True, interval=150)
        self._debounce.timeout.connect(self.refresh)
        controller.configChanged.connect(lambda key: self._debounce.start() if key in PLAN_KEYS else None)
        controller.datasetChanged.connect(self._debounce.start)
        controller.lengthsChanged.connect(self._debounce.start)
        hardware_panel.changed.connect(self._debounce.start)
        self.refresh()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        modes = QHBoxLayout()
        self.auto_button = QRadioButton("Automatic (recommended)")
        self.auto_button.setToolTip(cfg.field_info("training", "plan")["help"])
        self.custom_button = QRadioButton("My own settings")
        self.custom_button.setToolTip(self.auto_button.toolTip())
        group = QButtonGroup(self)
        group.addButton(self.auto_button)
        group.addButton(self.custom_button)
        self.auto_button.toggled.connect(self._on_mode)
        modes.addWidget(self.auto_button)
        modes.addWidget(self.custom_button)
        modes.addStretch(1)
        layout.addLayout(modes)
        self.explanation = label("", "")
        layout.addWidget(self.explanation)
        self.time = label("", "subtitle")
        layout.addWidget(self.time)
        self.keep = QCheckBox("Keep general ability")
        self.keep.setToolTip(cfg.field_info("training", "keep_general")["help"])
        self.keep.clicked.connect(self._on_keep)
        layout.addWidget(self.keep)
        self.keep_note = label("", "hint")
        layout.addWidget(self.keep_note)
        self.method_note = label("", "hint")
        layout.addWidget(self.method_note)
        self.warnings = label("", "warning")
        self.warnings.setVisible(False)
        layout.addWidget(self.warnings)

    # --- user actions ------------------------------------------------------------------------
    def _on_mode(self, automatic: bool) -> None:
        value = "auto" if automatic else "custom"
        if self.controller.config.training.plan != value:
            self.controller.set_value("training.plan", value)

    def _on_keep(self, checked: bool) -> None:
        self.controller.set_value("training.keep_general", "on" if checked else "off")

    # --- the plan ------------------------------------------------------------------------------
    def inputs(self) -> Optional[PlanInputs]:
        """The plan's inputs from what the window knows; None until a dataset is loaded."""
        report, config = self.controller.report, self.controller.config
        if report is None or not getattr(report, "rows_valid", 0):
            return None
        train, val = split_counts(config, report.rows_valid)
        lengths = list(self.controller.lengths)
        if self.controller.pair_answers:  # a pair trains as two sequences, each cut to max_length
            lengths = autoplan.pair_lengths(lengths, self.controller.pair_answers, config.data.max_length)
        mean = sum(lengths) / len(lengths) if lengths else 0
        hardware = self.hardware_panel.hardware
        estimate = self.hardware_panel.last_estimate
        model_dir = self.controller.model_dir
        params = autoplan.model_shape(model_dir).params if model_dir else 0
        return PlanInputs(examples=train, lengths=tuple(lengths), max_length=config.data.max_length,
                          method=config.method.name, model_params=params,
                          device=hardware.device if hardware else "cpu",
                          memory_bytes=hardware.memory if hardware else 0,
                          method_memory=dict((estimate.per_method or {}) if estimate else {}),
                          val_examples=val, val_lengths=(round(mean),) * val if mean else (),
                          curve_tokens=timing.CURVE_TOKENS if (config.training.general_curve and val) else 0,
                          keep_general=config.training.keep_general, step_limit=config.training.max_steps)

    def refresh(self) -> None:
        config = self.controller.config
        automatic = config.training.plan == "auto"
        for button, on in ((self.auto_button, automatic), (self.custom_button, not automatic)):
            button.blockSignals(True)
            button.setChecked(on)
            button.blockSignals(False)
        inputs = self.inputs()
        if inputs is None:
            self.plan = self.estimate = None
            self.explanation.setText("Choose a data file on the Dataset tab: the plan is made from it.")
            self.time.setText("")
            self.keep.setChecked(config.training.keep_general == "on")
            self.keep_note.setText("")
            self.method_note.setText("")
            self.warnings.setVisible(False)
            self.planChanged.emit(None)
            return
        self.plan = plan = autoplan.plan_for(config, inputs)
        self.explanation.setText(plan.explanation)
        self.keep.setChecked(plan.keep_general)
        self.keep.setEnabled(config.training.objective == "sft")  # pairs: not used (the note below says why)
        self.method_note.setText(f"Method: {plan.method_note}" if plan.method_note else "")
        self.method_note.setVisible(bool(plan.method_note))
        self.warnings.setText("\n".join(plan.warnings))
        self.warnings.setVisible(bool(plan.warnings))
        self._show_time(plan, inputs)
        self.planChanged.emit(plan)

    def _show_time(self, plan: Plan, inputs: PlanInputs) -> None:
        config, model_dir = self.controller.config, self.controller.model_dir
        device = inputs.device
        note = plan.keep_general_note[0].upper() + plan.keep_general_note[1:] + "."
        if not model_dir or not inputs.lengths:
            self.estimate = None
            self.time.setText("Time on this computer: known once the examples are measured.")
            self.keep_note.setText(note)
            return
        key = timing.throughput_key(config, model_dir, device)
        rate = timing.load_throughput(paths.data_dir(), key)
        if rate is None:
            self.estimate = None
            self.keep_note.setText(note)
            if self._start_calibration(key):
                self.time.setText("Measuring how fast this computer trains this model (about half a minute)…")
            else:
                self.time.setText("Time on this computer: measured when training starts.")
            return
        learned = [round(length * timing.LEARNED_SHARE_DEFAULT) for length in inputs.lengths]
        answers = self._answers_to_write(model_dir, config.model.template)
        work = autoplan.work_from_lengths(plan, config, device, lengths=inputs.lengths, learned=learned,
                                          val_lengths=inputs.val_lengths,
                                          val_learned=[round(v * timing.LEARNED_SHARE_DEFAULT) for v in inputs.val_lengths],
                                          answers_to_write=answers)
        shape = autoplan.model_shape(model_dir)
        self.estimate = estimate = timing.estimate(work, shape, rate)
        self.time.setText(f"Time on this computer: {timing.format_duration(estimate.total_s)}.")
        if plan.keep_general:
            from engine.train.preview import keep_general_cost

            note += " " + keep_general_cost(plan, estimate, shape, work.general_length)
        self.keep_note.setText(note)

    def _answers_to_write(self, model_dir: str, template: str) -> int:
        """The general answers the run writes before training, counted as training counts them.

        Asked again on every estimate, since a run may have written them since; until the helper first
        answers they count as still to write (the estimate errs long rather than short)."""
        key = (model_dir, template)
        self._answers_job.submit(lambda: (key, general_answers_missing(*key)))
        return self._answers.get(key, len(autoplan.kg.load_prompts()))

    def _on_answers(self, result: tuple) -> None:
        key, missing = result
        if self._answers.get(key) != missing:
            self._answers[key] = missing
            self.refresh()  # asks once more, finds the same number and stops there

    # --- calibration in a child process ----------------------------------------------------
    def _start_calibration(self, key: str) -> bool:
        if not calibration_enabled() or self.controller.busy or key in self._failed_keys:
            return False
        if self.host is not None:
            return self._calibrating == key
        from gui.process_host import ProcessHost

        self._calibrating = key
        self.host = ProcessHost(self.calibrate_target, args=(cfg.to_dict(self.controller.build_config()),),
                                name="calibrate", parent=self)
        self.host.ended.connect(self._on_calibrated)
        self.host.start()
        return True

    def _on_calibrated(self, outcome) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.wait(2000)
            host.deleteLater()
        if outcome is None or type(outcome).__name__ == "Failed":
            self._failed_keys.add(self._calibrating or "")
        self._calibrating = None
        self.refresh()

    def shutdown(self) -> None:
        """Stop a calibration still running (the window is closing)."""
        if self.host is not None:
            self.host.request_stop()
            self.host.wait(5000)
