"""The Dataset view: loading files, column mapping, rejected rows, the token preview and the histogram."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.config import RunConfig
from gui.controller import Controller
from gui.state import SAMPLE_DATASET
from gui.views.dataset_view import DatasetView
from tests.fixtures.make_fixtures import HERE as FIXTURES

WAIT_MS = 20000  # generous: the machine may be busy; a passing run takes well under a second each


@pytest.fixture
def controller(tiny_model_dir):
    controller = Controller(RunConfig())
    controller.set_model_dir(str(tiny_model_dir))
    return controller


def open_and_wait(qtbot, view: DatasetView, path) -> None:
    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.open_file(str(path))


def wait_for_preview(qtbot, view: DatasetView) -> None:
    qtbot.waitUntil(lambda: bool(view.preview.pieces), timeout=WAIT_MS)


def make_view(qtbot, controller) -> DatasetView:
    view = DatasetView(controller)
    qtbot.addWidget(view)
    view.resize(1280, 760)
    return view


def test_sample_loads_and_preview_marks_learned_and_context(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    report = controller.report
    assert report.format == "messages"
    assert view.examples.table.rowCount() == report.rows_valid == len(SAMPLE_DATASET.read_text().splitlines())
    assert not view.examples.rejected_card.isVisibleTo(view)
    wait_for_preview(qtbot, view)
    first = json.loads(SAMPLE_DATASET.read_text().splitlines()[0])["messages"]
    # The answer is learned, the question is context, and the template's markers are visible.
    assert first[1]["content"] in view.preview.trained_text()
    assert first[0]["content"] in view.preview.masked_text()
    assert "<|im_start|>" in view.preview.masked_text()
    html = view.preview.text.toHtml()
    assert "#d6f0dc" in html.lower()  # the learned colour is on screen
    assert "Learned" in view.preview.legend.text() and "not&nbsp;learned" in view.preview.legend.text()


def test_selecting_another_example_shows_it(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    wait_for_preview(qtbot, view)
    third = controller.report.examples[2]
    view.examples.table.selectRow(2)
    answer = third.messages[-1]["content"]
    qtbot.waitUntil(lambda: answer in view.preview.trained_text(), timeout=WAIT_MS)


def test_train_on_prompt_learns_everything(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    wait_for_preview(qtbot, view)
    question = controller.report.examples[0].messages[0]["content"]
    controller.set_value("data.train_on_prompt", True)
    qtbot.waitUntil(lambda: question in view.preview.trained_text(), timeout=WAIT_MS)


def test_shared_alpaca_file_loads(qtbot, controller, shared_data):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, shared_data / "alpaca_en_demo.json")
    assert controller.report.format == "alpaca"
    assert view.examples.table.rowCount() == controller.report.rows_valid > 0
    assert "alpaca" in view.summary.text()


def test_unrecognised_columns_offer_a_mapping(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, FIXTURES / "custom_columns.tsv")
    assert controller.report is None
    assert view.error.isVisibleTo(view) and "not recognised" in view.error.text()
    assert view.mapping_card.isVisibleTo(view)
    assert set(view.mapping.combos) == {"question", "answer"}
    # The guesses from the column names are right, so Apply is all the user has to press.
    assert view.mapping.mapping() == {"question": "prompt", "answer": "completion"}
    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.mapping.apply_button.click()
    assert controller.config.data.mapping == {"question": "prompt", "answer": "completion"}
    assert controller.report.rows_valid == 3
    assert view.examples.table.rowCount() == 3
    assert view.examples.table.item(0, 1).text() == "What time do you open?"


def test_mapping_needs_a_question_and_an_answer(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, FIXTURES / "custom_columns.tsv")
    view.mapping.combos["answer"].setCurrentIndex(view.mapping.combos["answer"].findData(""))
    view.mapping.apply_button.click()
    assert "answer" in view.mapping.error.text()
    assert controller.config.data.mapping == {}


def test_rejected_rows_are_listed_and_clickable(qtbot, controller, tmp_path):
    data = tmp_path / "mixed.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad = {"messages": [{"role": "user", "content": "only a question"}]}
    data.write_text("\n".join(json.dumps(r) for r in (good, bad, good)) + "\n", encoding="utf-8")
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, data)
    assert view.examples.rejected_card.isVisibleTo(view)
    assert view.examples.rejected.count() == 1
    item = view.examples.rejected.item(0)
    assert item.text().startswith("Row 2:")
    with qtbot.waitSignal(view.previewShown, timeout=WAIT_MS):
        view.examples.rejected.itemClicked.emit(item)
    shown = view.preview.text.toPlainText()
    assert "Row 2" in shown and "only a question" in shown
    assert "2 usable examples" in view.summary.text() and "1 rows left out" in view.summary.text()


def test_unreadable_file_says_so_without_a_mapping(qtbot, controller, tmp_path):
    data = tmp_path / "broken.json"
    data.write_text("[{not json", encoding="utf-8")
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, data)
    assert view.error.isVisibleTo(view) and "broken.json" in view.error.text()
    assert view.examples.table.rowCount() == 0


def test_histogram_line_follows_max_length(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    qtbot.waitUntil(lambda: len(view.histogram.lengths) == controller.report.rows_valid, timeout=WAIT_MS)
    lengths = view.histogram.lengths
    assert view.histogram.line.value() == 512 and view.histogram.cut_count() == 0
    middle = sorted(lengths)[len(lengths) // 2]
    controller.set_value("data.max_length", middle)
    assert view.histogram.line.value() == middle
    expected = sum(1 for n in lengths if n > middle)
    assert view.histogram.cut_count() == expected > 0
    assert f"{expected} of {len(lengths)}" in view.histogram.summary.text()
    # The form in the view edits the same setting.
    view.settings.form.editors["data.max_length"].setValue(600)
    assert controller.config.data.max_length == 600 and view.histogram.line.value() == 600


def test_split_control_updates_counts_and_warns(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    total = controller.report.rows_valid
    controller.set_value("data.val_fraction", 0.2)
    assert f"{round(total * 0.2)} held out" in view.settings.split_label.text()
    open_and_wait(qtbot, view, FIXTURES / "messages.json")
    # A handful of examples: the plain-words warnings say so.
    assert view.warnings.isVisibleTo(view)
    assert "example" in view.warnings.text().lower()


def test_drop_a_file_opens_it(qtbot, controller):
    view = make_view(qtbot, controller)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(FIXTURES / "sharegpt.jsonl"))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.dropEvent(event)
    assert controller.config.data.path.endswith("sharegpt.jsonl")
    assert controller.report.format == "sharegpt"


def test_only_the_newest_background_result_is_shown(qtbot):
    """Clicking quickly through examples must never leave an older preview on screen."""
    import threading

    from gui.widgets.background import LatestJob

    job = LatestJob()
    slow_may_finish = threading.Event()
    results, errors = [], []
    job.finished.connect(results.append)
    job.failed.connect(errors.append)
    job.submit(lambda: slow_may_finish.wait(10) and "old")
    job.submit(lambda: "new")
    qtbot.waitUntil(lambda: results == ["new"], timeout=WAIT_MS)
    slow_may_finish.set()
    qtbot.waitUntil(lambda: not job.running, timeout=WAIT_MS)
    assert results == ["new"] and errors == []
    job.submit(lambda: 1 / 0)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "ZeroDivisionError" in errors[0]
    # A long job learns that it was superseded and can stop early.
    started, stopped = threading.Event(), threading.Event()

    def long_job(still_wanted):
        started.set()
        while still_wanted():
            threading.Event().wait(0.01)
        stopped.set()

    job.submit_cancellable(long_job)
    assert started.wait(10)
    job.submit(lambda: "newer")
    assert stopped.wait(10)
    qtbot.waitUntil(lambda: results[-1] == "newer", timeout=WAIT_MS)


def test_use_the_sample_button(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, FIXTURES / "sharegpt.jsonl")
    with qtbot.waitSignal(view.reportShown, timeout=WAIT_MS):
        view.sample_button.click()
    assert controller.config.data.path == str(SAMPLE_DATASET)


def test_huge_datasets_are_measured_on_a_sample(qtbot, tiny_model_dir):
    from engine.data.formats import Example
    from gui.views import dataset_jobs
    from gui.widgets.length_histogram import LengthHistogram

    examples = [Example(row=i + 1, messages=[{"role": "user", "content": "hi " * (i % 7)},
                                             {"role": "assistant", "content": "ok"}]) for i in range(50)]
    result = dataset_jobs.token_lengths(examples, str(tiny_model_dir), "auto", "messages", limit=10)
    assert len(result.lengths) == 10 and result.total == 50
    # The histogram's lengths are the ones training sees.
    from engine.templates import render

    from engine.window_jobs import tokenizer_for

    tokenizer = tokenizer_for(str(tiny_model_dir), "auto")
    assert result.lengths == [render(e, tokenizer, max_length=4096).full_length for e in examples[::5]]
    histogram = LengthHistogram()
    histogram.set_max_length(512)
    histogram.set_lengths(result.lengths, result.total)
    assert "Measured on 10 of the 50 examples" in histogram.summary.text()


def test_general_data_can_be_mixed_in_to_protect_what_the_model_knew(qtbot, controller, monkeypatch, tmp_path):
    view = make_view(qtbot, controller)
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"instruction": "Name a colour.", "output": "Blue."}) + "\n")
    monkeypatch.setattr("gui.views.dataset_view.QFileDialog.getOpenFileName", lambda *a, **k: (str(general), ""))
    view.settings.mix_button.click()
    config = controller.build_config()
    assert config.data.mix_path == str(general) and config.data.mix_ratio == 0.2
    assert "general.jsonl" in view.settings.mix_button.text()
    assert view.settings.form.editors["data.mix_ratio"].value() == pytest.approx(0.2)


def test_test_share_and_test_file_controls_change_the_split(qtbot, controller, monkeypatch, tmp_path):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    settings = view.settings
    total = controller.report.rows_valid  # 600: 10% each for validation and test
    assert settings.split_label.text() == (f"{total - 120} examples for training, 60 held out to check progress "
                                           "(validation), 60 kept for the final test.")
    settings.form.editors["data.test_fraction"].setValue(0.0)
    assert controller.config.data.test_fraction == 0.0 and "0 kept for the final test" in settings.split_label.text()
    assert "No test examples (the test share is 0)" in view.warnings.text()
    test_file = tmp_path / "held-back.jsonl"
    test_file.write_text(SAMPLE_DATASET.read_text().splitlines()[0] + "\n")
    monkeypatch.setattr("gui.widgets.data_settings.QFileDialog.getOpenFileName", lambda *a, **k: (str(test_file), ""))
    assert not settings.test_clear.isVisibleTo(settings)
    settings.test_button.click()
    assert controller.build_config().data.test_path == str(test_file)
    assert settings.test_button.text() == "Test: held-back.jsonl" and settings.test_clear.isVisibleTo(settings)
    assert not settings.form.editors["data.test_fraction"].isEnabled()
    assert settings.split_label.text().endswith("the final test from held-back.jsonl.")
    assert "No test examples" not in view.warnings.text()
    settings.test_clear.click()
    assert controller.config.data.test_path == "" and settings.test_button.text() == "Test file…"


def test_plain_text_offers_its_completion_separator_and_the_preview_follows_it(qtbot, controller, tmp_path):
    view = make_view(qtbot, controller)
    settings = view.settings
    path = tmp_path / "sql.jsonl"
    path.write_text("".join(json.dumps({"text": f"table: t{i} (name)\nQ: How many rows?\nA: SELECT COUNT(*) FROM t{i}"})
                            + "\n" for i in range(10)))
    open_and_wait(qtbot, view, path)
    assert settings.form.editors["data.completion_separator"].isVisibleTo(settings)
    assert "Suggested: 'A:' (10 of 10 rows)" in settings.separator_hint.text() and settings.use_separator.isVisibleTo(settings)
    wait_for_preview(qtbot, view)
    assert view.preview.masked_text() == ""  # without a separator every token is learned
    with qtbot.waitSignal(view.previewShown, timeout=WAIT_MS):
        settings.use_separator.click()
    assert controller.config.data.completion_separator == "A:"
    assert settings.form.editors["data.completion_separator"].text() == "A:"
    assert not settings.use_separator.isVisibleTo(settings)
    assert view.preview.trained_text().startswith(" SELECT COUNT(*) FROM t0")
    assert view.preview.masked_text().endswith("Q: How many rows?\nA:")
    assert view.examples.table.item(0, 2).text() == "SELECT COUNT(*) FROM t0"  # the answer column fills in
    open_and_wait(qtbot, view, SAMPLE_DATASET)  # chat data: the separator does not apply
    assert not settings.form.editors["data.completion_separator"].isVisibleTo(settings)
    assert not settings.separator_hint.isVisibleTo(settings)


def test_opening_another_file_previews_its_own_first_example(qtbot, controller):
    view = make_view(qtbot, controller)
    open_and_wait(qtbot, view, SAMPLE_DATASET)
    wait_for_preview(qtbot, view)
    open_and_wait(qtbot, view, FIXTURES / "messages.json")
    answer = controller.report.examples[0].messages[-1]["content"]
    qtbot.waitUntil(lambda: answer in view.preview.trained_text(), timeout=WAIT_MS)
