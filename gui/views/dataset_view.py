"""The Dataset tab: open a file, see what was understood, and see each example exactly as trained.

Reading the file, loading the tokenizer and rendering run on pool threads (gui.views.dataset_jobs);
only the newest request of each kind is shown, so clicking quickly never shows a stale preview.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QSplitter, QVBoxLayout, QWidget

from gui.controller import Controller
from gui.state import SAMPLE_DATASET
from gui.style import label, view_header
from gui.views import dataset_jobs
from gui.widgets.background import LatestJob
from gui.widgets.card import Card
from gui.widgets.data_settings import FILE_FILTER, DataSettings
from gui.widgets.examples_list import ExamplesList
from gui.widgets.length_histogram import LengthHistogram
from gui.widgets.mapping_editor import MappingEditor
from gui.widgets.pair_length_chart import PairLengthChart
from gui.widgets.pair_preview import PairPreview
from gui.widgets.token_preview import TokenPreview

# Settings whose change means the preview (and maybe the lengths) must be rendered again.
RENDER_KEYS = {"data.max_length", "data.train_on_prompt", "data.completion_separator", "model.template", "model.dir"}
LENGTH_KEYS = {"model.template", "model.dir"}


def _single_thread_pool(parent: QWidget) -> QThreadPool:
    pool = QThreadPool(parent)
    pool.setMaxThreadCount(1)
    pool.setExpiryTimeout(-1)  # keep the thread, and with it its loaded tokenizer, while the view lives
    return pool


class DatasetView(QWidget):
    """Signals `reportShown`, `previewShown`, `lengthsShown` say when each background result is on screen."""

    reportShown = Signal()
    previewShown = Signal()
    lengthsShown = Signal()

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("page")
        self.controller = controller
        self.setAcceptDrops(True)
        self._inspect_job = LatestJob(self)
        self._inspect_job.finished.connect(self._on_inspection)
        self._inspect_job.failed.connect(lambda message: self._on_inspection(dataset_jobs.Inspection(error=message)))
        self._record_job = LatestJob(self)
        self._record_job.finished.connect(self._on_record)
        # Each kind of job gets its own thread, so a quick preview never waits behind measuring
        # hundreds of examples (the machine may have only two cores).
        self._preview_job = LatestJob(self, pool=_single_thread_pool(self))
        self._preview_job.finished.connect(self._on_preview)
        self._preview_job.failed.connect(self._on_preview_failed)
        self._lengths_job = LatestJob(self, pool=_single_thread_pool(self))
        self._lengths_job.finished.connect(self._on_lengths)
        self._lengths_job.failed.connect(lambda message: self.histogram.summary.setText(message))
        self._examples: list = []
        self._split_warnings: list[str] = []
        self._template_warning: Optional[str] = None
        self._rejected_reason = ""
        self._build()
        controller.configChanged.connect(self._on_config_changed)
        if controller.config.data.path:
            self.reload()

    # --- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 12)
        root.setSpacing(12)

        header, self.file_label = view_header("Training examples",
                                              "No file chosen yet. Open one, or drop it onto this window.")
        self.sample_button = QPushButton("Use the sample")
        self.sample_button.setToolTip("The built-in sample: orders written freely, answered as one line of JSON.")
        self.sample_button.clicked.connect(lambda: self.open_file(str(SAMPLE_DATASET)))
        header.addWidget(self.sample_button)
        self.open_button = QPushButton("Open file…")
        self.open_button.setObjectName("primary")
        self.open_button.clicked.connect(self._choose_file)
        header.addWidget(self.open_button)
        root.addLayout(header)

        self.summary = label("", "subtitle")
        root.addWidget(self.summary)
        self.error = label("", "error")
        self.error.setVisible(False)
        root.addWidget(self.error)
        self.warnings = label("", "warning")
        self.warnings.setVisible(False)
        root.addWidget(self.warnings)

        self.mapping_card = Card("What do the columns hold?")
        self.mapping = MappingEditor()
        self.mapping.mappingApplied.connect(self._apply_mapping)
        self.mapping_card.body.addWidget(self.mapping)
        self.mapping_card.setVisible(False)
        root.addWidget(self.mapping_card)

        splitter = QSplitter(Qt.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_left())
        splitter.addWidget(self._build_right())
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([500, 740])
        self.content = splitter
        root.addWidget(splitter, 1)
        root.addStretch(0)  # takes the space only while the content is hidden

    def _build_left(self) -> QWidget:
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        self.examples = ExamplesList()
        self.examples.setMinimumWidth(380)
        self.examples.exampleSelected.connect(self._request_preview)
        self.examples.rejectedSelected.connect(self._on_rejected_selected)
        column.addWidget(self.examples, 3)
        # Preference data only: longer chosen answers are a known bias, so show it across the whole file.
        self.pair_chart_card = Card("Chosen vs rejected length")
        self.pair_chart = PairLengthChart()
        self.pair_chart_card.body.addWidget(self.pair_chart)
        self.pair_chart_card.setMaximumHeight(240)  # the examples keep most of the column
        self.pair_chart_card.setVisible(False)
        column.addWidget(self.pair_chart_card, 1)
        return left

    def _build_right(self) -> QWidget:
        # A splitter, not a box layout: a box layout treats a card with word-wrapped text as unable to
        # shrink, and then squeezes the settings below until their controls overlap.
        column = QSplitter(Qt.Vertical)
        column.setChildrenCollapsible(False)
        preview = Card("How the model sees this example",
                       "The text below is exactly what training uses, with the chat template applied.")
        self.preview = TokenPreview()
        self.preview.show_message("Choose an example on the left.")
        preview.body.addWidget(self.preview)
        # Preference data: the prompt once, then the chosen and the rejected answer side by side.
        self.pair_preview = PairPreview()
        self.pair_preview.setVisible(False)
        preview.body.addWidget(self.pair_preview)
        self.preview_card = preview
        column.addWidget(preview)

        lengths = Card("Length and split", keep_whole=True)  # its settings must never overlap
        row = QHBoxLayout()
        self.histogram = LengthHistogram()
        self.histogram.set_max_length(self.controller.config.data.max_length)
        row.addWidget(self.histogram, 3)
        self.settings = DataSettings(self.controller)
        self.settings.changed.connect(self._on_settings_changed)
        row.addWidget(self.settings, 2)
        lengths.body.addLayout(row)
        column.addWidget(lengths)
        column.setStretchFactor(0, 5)
        column.setStretchFactor(1, 3)
        return column

    # --- opening files --------------------------------------------------------------------
    def _choose_file(self) -> None:
        start = str(Path(self.controller.config.data.path).parent) if self.controller.config.data.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open training data", start, FILE_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str) -> None:
        """Make `path` the training data (forgetting the old column mapping) and read it."""
        self.controller.set_value("data.mapping", {})
        self.controller.set_value("data.format", "auto")
        self.controller.set_value("data.path", str(path))
        self.reload()

    def reload(self) -> None:
        """Read the current data file again with the current format and mapping."""
        data = self.controller.config.data
        self.file_label.setText(data.path)
        self.summary.setText("Reading the file…")
        self.error.setVisible(False)
        for job in (self._record_job, self._preview_job, self._lengths_job):
            job.cancel()  # results about the previous file must not land on this one
        self._inspect_job.submit(lambda: dataset_jobs.inspect(data.path, data.format, dict(data.mapping)))

    def _apply_mapping(self, mapping: dict) -> None:
        self.controller.set_value("data.mapping", mapping)
        self.reload()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            self.open_file(files[0])
            event.acceptProposedAction()

    # --- results --------------------------------------------------------------------------
    def _on_inspection(self, inspection: dataset_jobs.Inspection) -> None:
        if inspection.report is None:
            self._show_failure(inspection)
        else:
            self._show_report(inspection.report)
        self.reportShown.emit()

    def _message(self, text: str) -> None:
        """A plain message in the preview's place (loading, a left-out row, a problem)."""
        self.pair_preview.setVisible(False)
        self.preview.setVisible(True)
        self.preview.show_message(text)

    def _show_pairs(self, pairs: bool) -> None:
        """Switch the card titles and the length card between single examples and preference pairs."""
        self.pair_chart_card.setVisible(pairs)
        self.preview_card.title.setText("How the model sees this pair" if pairs else "How the model sees this example")
        if not pairs:
            self.pair_chart.set_pairs([])

    def _show_report(self, report) -> None:
        self._show_pairs(report.format == "preference")
        self._match_objective(report.format)
        self.content.setVisible(True)
        self.controller.set_report(report)
        self._examples = list(report.examples)
        rejected = len(report.rejected)
        self.summary.setText(f"Format: {report.format}  ·  {report.rows_valid} usable examples"
                             + (f"  ·  {rejected} rows left out" if rejected else "  ·  every row is usable"))
        mapping = self.controller.config.data.mapping
        self.mapping_card.setVisible(bool(mapping))
        if mapping:
            self.mapping.set_columns(list(report.columns), mapping)
        self.examples.show_examples(self._examples, self.controller.config.data.completion_separator)
        self.examples.show_rejected(report.rejected)
        self._update_split()
        self._request_lengths()
        if self._examples:
            # Row 1 may still be selected from the previous file: selecting it again would change nothing
            # and the old file's example would stay in the preview.
            self.examples.table.clearSelection()
            self.examples.table.selectRow(0)

    def _match_objective(self, data_format: str) -> None:
        """Pairs call for preference tuning, single answers for SFT: switch, and say so."""
        objective = self.controller.config.training.objective
        if data_format == "preference" and objective == "sft":
            self.controller.set_value("training.objective", "dpo")
            self.controller.say("Preference pairs: training will teach the model to prefer the chosen answers (DPO). "
                                "Change it in the Method view.")
        elif data_format != "preference" and objective != "sft":
            self.controller.set_value("training.objective", "sft")
            self.controller.say("One answer per prompt: training will teach the model to write the answers (SFT).")

    def _show_failure(self, inspection: dataset_jobs.Inspection) -> None:
        self.controller.set_report(None)
        self._examples = []
        self._split_warnings, self._template_warning = [], None
        self.examples.show_examples([])
        self.examples.show_rejected([])
        self.histogram.set_lengths([])
        self.settings.set_data([], None)
        self.summary.setText("This file cannot be used yet.")
        self.error.setText(inspection.error)
        self.error.setVisible(True)
        self.warnings.setVisible(False)
        self.mapping_card.setVisible(bool(inspection.columns))
        if inspection.columns:
            self.mapping.set_columns(inspection.columns, self.controller.config.data.mapping)
        self._message("No examples to show yet.")
        # Nothing to look at until the file is usable: the error and the mapping control are the page.
        self.content.setVisible(False)

    def _on_rejected_selected(self, row: int, reason: str) -> None:
        """Show a left-out row: why, and the row itself as it is in the file."""
        self._preview_job.cancel()  # an example's preview still on its way must not replace this
        self._rejected_reason = f"Row {row} of the file was left out: {reason}"
        self._message(self._rejected_reason)
        path = self.controller.config.data.path
        self._record_job.submit(lambda: (row, dataset_jobs.raw_record(path, row)))

    def _on_record(self, result: tuple) -> None:
        row, record = result
        shown = json.dumps(record, ensure_ascii=False, indent=2) if record is not None else "(this row could not be read)"
        self._message(f"{self._rejected_reason}\n\nThe row as it is in the file:\n{shown}\n\n"
                                  "Fix it in the file and open the file again, or leave it out: the other rows "
                                  "are used as they are.")
        self.preview.note.setText(f"Row {row} of {Path(self.controller.config.data.path).name}.")
        self.previewShown.emit()

    def _show_warnings(self) -> None:
        """Everything worth a warning, from the report, the split and the template, in plain words."""
        report = self.controller.report
        lines = list(report.warnings if report is not None else []) + self._split_warnings
        if self._template_warning:
            lines.append(self._template_warning)
        self.warnings.setText("\n".join(f"⚠  {line}" for line in dict.fromkeys(lines)))
        self.warnings.setVisible(bool(lines))

    def _update_split(self) -> None:
        self.settings.set_data(self._examples, self.controller.report)

    def _on_settings_changed(self) -> None:
        self._split_warnings = list(self.settings.split_warnings)
        self._show_warnings()

    # --- lengths and preview --------------------------------------------------------------
    def _render_inputs(self) -> Optional[tuple[str, str]]:
        model_dir = self.controller.model_dir
        if not model_dir:
            return None
        return model_dir, self.controller.config.model.template

    def _request_lengths(self) -> None:
        inputs = self._render_inputs()
        if inputs is None or not self._examples:
            return
        examples = list(self._examples)
        data_format = self.controller.report.format if self.controller.report is not None else "auto"
        self.histogram.summary.setText("Measuring the length of every example…")
        self._lengths_job.submit_cancellable(
            lambda still_wanted: dataset_jobs.token_lengths(examples, *inputs, data_format, still_wanted=still_wanted))

    def _on_lengths(self, result: dataset_jobs.Lengths) -> None:
        self.histogram.set_lengths(result.lengths, result.total)
        self.controller.set_lengths(result.lengths, result.pairs)
        self.pair_chart.set_pairs(result.pairs)
        self._template_warning = result.template_warning
        self._show_warnings()
        self.lengthsShown.emit()

    def _rerender_selected(self) -> None:
        index = self.examples.selected_index()
        if index is not None:
            self._request_preview(index)

    def selected_example(self):
        """The Example shown in the preview, or None."""
        index = self.examples.selected_index()
        return self._examples[index] if index is not None and self._examples else None

    def _request_preview(self, index: int) -> None:
        self._record_job.cancel()
        inputs = self._render_inputs()
        if inputs is None:
            self._message("Getting the model's tokenizer ready…")
            return
        if not (self.preview.pieces or self.pair_preview.preview):
            self._message("Preparing the preview…")
        example, data = self._examples[index], self.controller.config.data
        max_length, train_on_prompt = data.max_length, data.train_on_prompt
        if getattr(example, "rejected", None) is not None:
            self._preview_job.submit(lambda: dataset_jobs.render_pair_preview(example, *inputs, max_length))
            return
        separator = data.completion_separator if example.text is not None else ""
        self._preview_job.submit(lambda: dataset_jobs.render_preview(example, *inputs, max_length, train_on_prompt,
                                                                     separator))

    def _on_preview(self, preview) -> None:
        pair = isinstance(preview, dataset_jobs.PairPreview)
        self.pair_preview.setVisible(pair)
        self.preview.setVisible(not pair)
        if pair:
            self.pair_preview.show_pair(preview)
        else:
            self.preview.show_pieces(preview.pieces, truncated=preview.truncated, tokens=preview.tokens,
                                     problem=preview.problem)
        self.previewShown.emit()

    def _on_preview_failed(self, message: str) -> None:
        self._message(message)
        self.previewShown.emit()

    def _on_config_changed(self, key: str) -> None:
        if key == "":  # a whole new config: read the data again; lengths and preview follow from it
            self.histogram.set_max_length(self.controller.config.data.max_length)
            self.reload()
            return
        if key == "data.max_length":
            self.histogram.set_max_length(self.controller.config.data.max_length)
        if key in LENGTH_KEYS:
            self._request_lengths()
        if key == "data.completion_separator":
            self.examples.show_examples(self._examples, self.controller.config.data.completion_separator)
        if key in RENDER_KEYS:
            self._rerender_selected()
