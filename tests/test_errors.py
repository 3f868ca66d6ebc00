"""One base class for every problem the user can fix; the CLI, the workers and the window catch it once."""
from __future__ import annotations

import ast
import queue
from pathlib import Path

import pytest

from engine.cli import UserError
from engine.config import ConfigError
from engine.data.errors import DataError
from engine.download import DownloadError
from engine.errors import TunesmithError
from engine.evaluate.runfolder import EvaluationError
from engine.export.errors import ExportError
from engine.models import ModelError
from engine.storage import StorageError
from engine.train.checkpoint import CheckpointError
from engine.train.rundir import RunFolderError

REPO = Path(__file__).resolve().parent.parent
USER_ERRORS = [UserError, ConfigError, DataError, EvaluationError, ExportError, ModelError, RunFolderError,
               DownloadError, StorageError, CheckpointError]


def _error_classes_in_engine() -> list[tuple[str, str]]:
    """(file, class name) of every class named ...Error under engine/."""
    found = []
    for path in (REPO / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                found.append((str(path.relative_to(REPO)), node.name))
    return found


def test_every_user_error_class_in_the_engine_derives_from_the_base():
    names = {cls.__name__ for cls in USER_ERRORS} | {"TunesmithError"}
    found = {name for _, name in _error_classes_in_engine()}
    assert found == names, f"a new error class must derive from TunesmithError and be listed here: {found - names}"
    for cls in USER_ERRORS:
        assert issubclass(cls, TunesmithError)


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda cls: cls.__name__)
def test_the_cli_prints_any_user_error_as_one_line(cls, monkeypatch, capsys):
    from engine import cli
    from engine.cli import models_cmd

    def failing_command(args):
        raise cls("runs/x: what is wrong. What to do.")

    monkeypatch.setattr(models_cmd, "run", failing_command)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "error: runs/x: what is wrong. What to do.\n"


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda cls: cls.__name__)
def test_the_window_shows_any_user_error_as_is(cls):
    from engine.errors import plain_message

    assert plain_message(cls("runs/x: what is wrong.")) == "runs/x: what is wrong."
    assert plain_message(KeyError("x")).startswith("Something went wrong (KeyError)")


@pytest.mark.parametrize("cls", [RunFolderError, ExportError, ConfigError], ids=lambda cls: cls.__name__)
def test_the_evaluation_worker_reports_any_user_error_without_a_traceback(cls, monkeypatch):
    from engine.evaluate import before_after
    from engine.evaluate.worker import eval_main

    def failing(*args, **kwargs):
        raise cls("runs/x: what is wrong.")

    monkeypatch.setattr(before_after, "evaluate_run", failing)
    events = queue.Queue()
    eval_main("runs/x", events)
    failed = events.get_nowait()
    assert type(failed).__name__ == "Failed" and failed.reason == "runs/x: what is wrong." and not failed.log_tail
