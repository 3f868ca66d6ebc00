"""The Export dialog: a real export through the real child process, then the folder can be opened."""
from __future__ import annotations

from pathlib import Path

from gui.widgets.export_dialog import EXPORT_CHOICES, ExportDialog
from tests.export_runs import make_lora_run


def test_the_dialog_offers_exactly_the_engines_targets():
    from engine.export import EXPORT_TARGETS

    assert set(EXPORT_CHOICES) == set(EXPORT_TARGETS)


def test_merged_export_runs_in_a_child_and_shows_the_result(qtbot, tiny_model_dir, tmp_path, monkeypatch):
    run = make_lora_run(tmp_path / "run", tiny_model_dir)
    dialog = ExportDialog(str(run))
    qtbot.addWidget(dialog)
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("merged"))
    assert dialog.destination.text().endswith("run-merged") and "folded into the model" in dialog.explanation.text()
    opened = []
    monkeypatch.setattr("gui.widgets.export_dialog.QDesktopServices.openUrl", lambda url: opened.append(url))
    dialog.start_export()
    qtbot.waitUntil(lambda: dialog.host is None and dialog.open_button.isVisibleTo(dialog), timeout=120_000)
    result = Path(dialog.result_path)
    assert (result / "config.json").is_file() and any(result.glob("*.safetensors"))
    assert "Exported to" in dialog.status.text()
    dialog.open_folder()
    assert opened and Path(opened[0].toLocalFile()) == result


def test_a_refused_export_is_explained_and_nothing_is_written(qtbot, tiny_model_dir, tmp_path):
    run = make_lora_run(tmp_path / "run", tiny_model_dir)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("the user's file")
    dialog = ExportDialog(str(run))
    qtbot.addWidget(dialog)
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("adapter"))
    dialog.destination.setText(str(occupied))
    dialog.start_export()
    qtbot.waitUntil(lambda: dialog.host is None, timeout=120_000)
    assert "did not finish" in dialog.status.text() and "already holds other files" in dialog.status.text()
    assert not dialog.open_button.isVisibleTo(dialog)
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
