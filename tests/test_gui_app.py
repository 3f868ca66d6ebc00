"""The window as a whole: it starts, it remembers the project, and every view renders."""
from __future__ import annotations

import json
from pathlib import Path

from engine import config as cfg
from gui import state
from gui.app import main
from gui.main_window import TAB_NAMES, MainWindow

WAIT_MS = 30000


def test_smoke_test_opens_and_exits_cleanly(qapp, tunesmith_home):
    assert main(["--smoke-test"]) == 0
    # Closing the window saved the project; a first start uses the sample and the starter model.
    saved = json.loads((tunesmith_home / state.STATE_FILE).read_text(encoding="utf-8"))
    assert saved["config"]["model"]["name"] == "starter"
    assert saved["config"]["data"]["path"] == str(state.SAMPLE_DATASET)


def test_a_data_folder_that_cannot_be_made_ends_the_start_with_its_reason(qapp, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TUNESMITH_HOME", str(blocker / "tunesmith"))
    assert main(["--smoke-test"]) == 1  # the real start shows the same text in a message box
    error = capsys.readouterr().err
    assert "Could not create the data folder" in error and "Traceback" not in error


def test_first_start_is_ready_to_train(qtbot):
    window = MainWindow(prepare_model=False)
    qtbot.addWidget(window)
    config = window.controller.config
    assert config.model.name == "starter" and config.method.name == "lora"
    assert Path(config.data.path) == state.SAMPLE_DATASET and state.SAMPLE_DATASET.is_file()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == list(TAB_NAMES)
    assert [p for p in cfg.check(config) if p.level == "error"] == []


def test_project_survives_close_and_reopen(qtbot, tiny_model_dir):
    from tests.fixtures.make_fixtures import HERE

    first = MainWindow(prepare_model=False)
    qtbot.addWidget(first)
    controller = first.controller
    controller.set_value("model.name", str(tiny_model_dir))
    controller.set_value("data.path", str(HERE / "custom_columns.tsv"))
    controller.set_value("data.mapping", {"question": "prompt", "answer": "completion"})
    controller.set_method("prefix")
    controller.set_value("training.epochs", 5)
    first.tabs.setCurrentIndex(TAB_NAMES.index("Method"))
    first.resize(1100, 700)
    expected = cfg.to_dict(controller.config)
    first.close()

    second = MainWindow(prepare_model=False)
    qtbot.addWidget(second)
    assert cfg.to_dict(second.controller.config) == expected
    assert second.tabs.currentIndex() == TAB_NAMES.index("Method")
    assert second.size().width() == 1100
    assert second.method_view.methods.explanation.text().startswith("Prefix tuning:")


def test_damaged_state_falls_back_to_defaults(qtbot, tunesmith_home):
    (tunesmith_home / state.STATE_FILE).write_text("{ not json", encoding="utf-8")
    window = MainWindow(prepare_model=False)
    qtbot.addWidget(window)
    assert cfg.to_dict(window.controller.config) == cfg.to_dict(state.default_config())


def test_unknown_or_bad_saved_settings_are_skipped_one_by_one(tunesmith_home, tmp_path):
    missing = tmp_path / "gone.jsonl"
    (tunesmith_home / state.STATE_FILE).write_text(json.dumps({"config": {
        "training": {"epochs": 2, "old_setting": 1, "lr": "fast"},
        "data": {"path": str(missing)},
    }}), encoding="utf-8")
    config = state.load_config()
    assert config.training.epochs == 2
    assert config.training.lr == state.default_config().training.lr
    assert config.data.path == str(state.SAMPLE_DATASET)  # the saved file no longer exists


def test_every_view_renders(qtbot, tiny_model_dir, screenshots):
    """Saves a PNG of each tab (to $TUNESMITH_SCREENSHOTS when set, else a temporary folder)."""
    out = screenshots
    config = state.default_config()
    config.model.name = str(tiny_model_dir)
    from gui.controller import Controller

    window = MainWindow(Controller(config), prepare_model=True, restore=False)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    dataset = window.dataset_view
    qtbot.waitUntil(lambda: bool(dataset.preview.pieces) and bool(dataset.histogram.lengths), timeout=WAIT_MS)
    for index, name in enumerate(TAB_NAMES):
        window.tabs.setCurrentIndex(index)
        qtbot.wait(50)
        image = window.grab().toImage()
        assert image.width() >= 1280 and image.height() >= 800
        path = out / f"{name.lower()}.png"
        assert image.save(str(path))
        assert path.stat().st_size > 10_000


def test_first_run_prepares_the_model_with_a_progress_dialog(qtbot, monkeypatch, tiny_model_dir):
    """Preparing the starter takes ~40 s the first time: a dialog shows progress, the window stays live."""
    import threading

    from PySide6.QtWidgets import QProgressDialog

    release = threading.Event()

    def slow_prepare(spec, progress=None):
        progress("Unpacking the starter model...", 0.25)
        release.wait(10)
        return {"folder": str(tiny_model_dir), "name": "tiny", "family": "llama", "parameters": 1e5,
                "stored_precision": "float32", "has_chat_template": True, "verified": True}

    # The model picker's wait for the engine helper: progress comes while it prepares, then the folder.
    monkeypatch.setattr("gui.widgets.model_picker._resolve", slow_prepare)
    window = MainWindow(prepare_model=True, restore=False)
    qtbot.addWidget(window)
    window.show()
    picker = window.method_view.model_picker
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(QProgressDialog)), timeout=WAIT_MS)
    dialog = next(d for d in window.findChildren(QProgressDialog) if d.isVisible())
    qtbot.waitUntil(lambda: "Unpacking" in dialog.labelText(), timeout=WAIT_MS)
    assert dialog.value() == 25
    assert window.controller.busy
    with qtbot.waitSignal(picker.modelReady, timeout=WAIT_MS):
        release.set()
    assert not any(d.isVisible() for d in window.findChildren(QProgressDialog))
    assert window.controller.model_dir == str(tiny_model_dir) and not window.controller.busy


def test_a_missing_model_is_explained_not_a_crash(qtbot, tmp_path):
    config = state.default_config()
    config.model.name = str(tmp_path / "deleted-model")
    from gui.controller import Controller

    window = MainWindow(Controller(config), prepare_model=True, restore=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.method_view.model_picker.modelFailed, timeout=WAIT_MS) as failed:
        pass
    assert "deleted-model" in failed.args[0]
    assert "could not be prepared" in window.dataset_view.preview.text.toPlainText()
    assert "deleted-model" in window.method_view.model_picker.status.text()
