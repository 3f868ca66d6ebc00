"""Where Tunesmith keeps the user's models, runs and caches.

Everything lives under one data folder: platformdirs' default (e.g. ~/.local/share/tunesmith on Linux),
or the folder the user moved it to (engine.storage.move_data writes that choice, one line, into
`location_file()` in the user's config folder, the only thing kept outside the data folder).
TUNESMITH_HOME overrides both, which the tests use to stay out of the real one.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunesmith"
LOCATION_FILE = "data-folder.txt"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def location_file() -> Path:
    """The file naming a moved data folder (absent while the data folder is at its default place)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / LOCATION_FILE


def data_dir(create: bool = True) -> Path:
    """The root of everything Tunesmith writes for the user."""
    override = os.environ.get("TUNESMITH_HOME")
    if override:
        root = Path(override)
    else:
        try:
            moved = location_file().read_text(encoding="utf-8").strip()
        except OSError:
            moved = ""
        root = Path(moved) if moved else default_data_dir()
    return _make(root) if create else root


def _subdir(name: str) -> Path:
    return _make(data_dir() / name)


def _make(folder: Path) -> Path:
    """Create `folder` (and its parents); a read-only or full drive, or a folder the user may not write,
    is said in plain words: this is the first thing a fresh start writes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from engine.download import disk_problem  # here: `import engine` stays light
        from engine.storage import StorageError

        problem = disk_problem(exc, "Tunesmith's data", folder)
        raise StorageError(f"{problem or f'Could not create the data folder {folder}: {exc.strerror}.'} "
                           "Setting TUNESMITH_HOME to another folder makes Tunesmith keep everything there.") from exc
    return folder


def models_dir() -> Path:
    """Converted and imported models, one Hugging Face folder each."""
    return _subdir("models")


def runs_dir() -> Path:
    """Training runs, one folder each (see engine.rundir)."""
    return _subdir("runs")


def downloads_dir() -> Path:
    """Files fetched once and kept (the starter model's GGUF in a development install)."""
    return _subdir("downloads")
