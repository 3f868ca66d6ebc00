"""The data folder: sizes of its parts, moving it (copy, verify, switch, never losing a run), the menu
entry the program writes itself, and removing everything."""
from __future__ import annotations

import errno
import json
import os

import pytest

from engine import desktop, download, paths, storage


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """A real (not TUNESMITH_HOME) data folder with a model, a run naming it, and a linked model."""
    monkeypatch.delenv("TUNESMITH_HOME")
    default = tmp_path / "share" / "tunesmith"
    monkeypatch.setattr(paths, "default_data_dir", lambda: default)
    monkeypatch.setattr(paths, "location_file", lambda: tmp_path / "config" / "data-folder.txt")
    model = default / "models" / "starter"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(os.urandom(300_000))
    run = default / "runs" / "2025-01-01_1200_sample"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_model.safetensors").write_bytes(os.urandom(50_000))
    (run / "run-info.json").write_text(json.dumps({"base_model_path": str(model), "status": "finished"}))
    (run / "run.yaml").write_text(f"model:\n  name: {model}\nout: {run}\n")
    outside = tmp_path / "elsewhere-model"
    outside.mkdir()
    (outside / "weights").write_bytes(b"x" * 1000)
    (default / "models" / "linked").symlink_to(outside)
    (default / "window-state.json").write_text("{}")
    return default


def test_usage_names_each_part_with_its_size(data_home):
    parts = {p.key: p.size_bytes for p in storage.usage()}
    assert parts["models"] == 300_000  # the linked model is not counted: it lives elsewhere
    assert parts["runs"] > 50_000 and parts["runtime"] == 0 and parts["other"] == 2


def test_move_copies_verifies_switches_and_keeps_every_run(data_home, tmp_path):
    before = {p.relative_to(data_home): p.read_bytes() for p in data_home.rglob("*") if p.is_file()
              and not p.is_symlink() and p.suffix not in (".json", ".yaml")}
    target = tmp_path / "big-drive"
    target.mkdir()
    (target / "someone-elses-file").write_text("kept")
    root = storage.move_data(target)
    assert root == (target / "tunesmith").resolve()  # a folder that held files gets a tunesmith folder inside
    assert paths.data_dir() == root and not data_home.exists()
    assert paths.location_file().read_text().strip() == str(root)
    for rel, data in before.items():
        assert (root / rel).read_bytes() == data
    run = root / "runs" / "2025-01-01_1200_sample"
    info = json.loads((run / "run-info.json").read_text())
    assert info["base_model_path"] == str(root / "models" / "starter")  # the run still finds its model
    assert str(data_home) not in (run / "run.yaml").read_text()
    assert os.readlink(root / "models" / "linked") == str(tmp_path / "elsewhere-model")
    # Moving back to the default place removes the note again.
    assert storage.move_data(data_home) == data_home.resolve()
    assert not paths.location_file().exists() and paths.data_dir() == data_home


def test_a_copy_that_does_not_verify_moves_nothing(data_home, tmp_path, monkeypatch):
    real = storage._sha256
    monkeypatch.setattr(storage, "_sha256", lambda path: "bad" if path.name == "model.safetensors" else real(path))
    with pytest.raises(storage.StorageError, match="Nothing was moved"):
        storage.move_data(tmp_path / "new")
    assert not (tmp_path / "new").exists() and paths.data_dir() == data_home
    assert (data_home / "runs" / "2025-01-01_1200_sample" / "run-info.json").is_file()


def test_a_drive_too_small_is_refused_before_copying(data_home, tmp_path, monkeypatch):
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(download.DownloadError, match="Not enough disk space") as caught:
        storage.move_data(tmp_path / "small")
    assert caught.value.kind == "disk" and not (tmp_path / "small").exists() and paths.data_dir() == data_home


def test_moving_into_itself_or_under_tunesmith_home_is_refused(data_home, monkeypatch):
    with pytest.raises(storage.StorageError, match="inside the data folder"):
        storage.move_data(data_home / "runs")
    monkeypatch.setenv("TUNESMITH_HOME", str(data_home))
    with pytest.raises(storage.StorageError, match="TUNESMITH_HOME"):
        storage.move_data(data_home.parent / "other")


def test_menu_entry_points_at_the_program_and_its_icon(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    program = tmp_path / "my apps" / "tunesmith"
    path = desktop.install_entry(program)
    text = path.read_text()
    assert path == tmp_path / "applications" / "tunesmith.desktop"
    assert f"Exec='{program}'" in text and "Name=Tunesmith" in text
    icon = next(line[5:] for line in text.splitlines() if line.startswith("Icon="))
    assert os.path.isabs(icon) and os.path.isfile(icon)
    assert desktop.installed_program() == str(program)
    assert desktop.remove_entry() == [path] and desktop.installed_program() is None


def test_remove_everything_leaves_nothing_behind(data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    entry = desktop.install_entry(tmp_path / "tunesmith")
    root = storage.move_data(tmp_path / "moved")
    removed = storage.remove_everything()
    assert set(removed) == {root, paths.location_file(), entry}
    assert not root.exists() and not entry.exists() and not paths.location_file().exists()
    assert (tmp_path / "elsewhere-model" / "weights").is_file()  # a linked model is the user's own


def test_cli_data_lists_the_parts(data_home, capsys):
    from engine.cli import main

    assert main(["data", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["folder"] == str(data_home)
    assert {p["name"] for p in shown["parts"]} == {"models", "runs", "runtime", "downloads", "logs", "other"}


def test_a_data_folder_that_cannot_be_made_is_said_plainly(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TUNESMITH_HOME", str(blocker / "tunesmith"))  # a real failure: ENOTDIR
    assert main(["setup"]) == 2
    error = capsys.readouterr().err
    assert f"Could not create the data folder {blocker / 'tunesmith'}" in error and "TUNESMITH_HOME" in error
    assert "Traceback" not in error and "internet" not in error


@pytest.mark.parametrize("failure, words", [(errno.EROFS, "may not write to"), (errno.ENOSPC, "disk is full")])
def test_a_read_only_or_full_drive_is_named_when_the_data_folder_is_made(tmp_path, monkeypatch, failure, words):
    # Root (CI, this machine) may write anywhere, so the drive's refusal is simulated at mkdir.
    def refuse(self, *args, **kwargs):
        raise OSError(failure, os.strerror(failure), str(self))

    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "tunesmith"))
    monkeypatch.setattr(paths.Path, "mkdir", refuse)
    with pytest.raises(storage.StorageError, match=words):
        paths.models_dir()
