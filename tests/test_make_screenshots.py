"""docs/make_screenshots.py (the README's pictures) works on any evaluated run folder and changes nothing in it."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from engine import config as cfg
from tests.eval_runs import CANARY_MESSAGES, OTHER_EXAMPLE, canary_run
from tests.fake_worker import fake_eval_main

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "docs" / "make_screenshots.py"


@pytest.fixture
def evaluated_run(tmp_path_factory, tmp_path, tiny_model_dir) -> Path:
    """A trained tiny run (a copy: the shared one is read-only) with its dataset and an evaluation."""
    run = shutil.copytree(canary_run(tmp_path_factory, tiny_model_dir), tmp_path / "2026-11-26_1000_canary")
    data = tmp_path / "canary.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in [CANARY_MESSAGES, OTHER_EXAMPLE] * 3),
                    encoding="utf-8")
    config = cfg.load(run / "run.yaml")
    config.model.name, config.data.path = str(tiny_model_dir), str(data)
    cfg.save(config, run / "run.yaml")
    fake_eval_main(str(run), queue.Queue())  # the numbers do not matter here, only that they are shown
    return run


@pytest.mark.slow
def test_every_tab_is_saved_at_both_sizes_with_a_real_chat_turn(evaluated_run, tmp_path, tunesmith_home):
    out = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TUNESMITH_HOME": str(tunesmith_home)}
    done = subprocess.run([sys.executable, str(SCRIPT), str(evaluated_run), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout + done.stderr
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(f"{tab}{suffix}.png" for tab in ("dataset", "method", "training", "evaluation")
                           for suffix in ("", "-1920x1080"))
    for name, size in (("training.png", (1280, 800)), ("evaluation-1920x1080.png", (1920, 1080))):
        image = QImage(str(out / name))
        assert (image.width(), image.height()) == size
    # Only links were made in a temporary data folder: the run and the user's data folder are as they were.
    assert not (tunesmith_home / "runs").exists() or not any((tunesmith_home / "runs").iterdir())
    assert (evaluated_run / "eval" / "results.json").is_file()


def test_a_run_without_an_evaluation_is_refused_with_what_to_do(tmp_path, tiny_model_dir, tmp_path_factory):
    run = shutil.copytree(canary_run(tmp_path_factory, tiny_model_dir), tmp_path / "not-evaluated")
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--out", str(tmp_path / "shots")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and f"tunesmith-cli eval {run}" in done.stderr
    assert not (tmp_path / "shots").exists()


def test_the_temporary_data_folder_links_the_run_and_models_and_takes_the_measured_speed(tmp_path):
    from docs.make_screenshots import temporary_data_folder

    run, models, user = tmp_path / "run", tmp_path / "models", tmp_path / "user"
    for folder in (run, models, user / "general-answers"):
        folder.mkdir(parents=True)
    (user / "throughput.json").write_text('{"k": {}}')
    home, bare = temporary_data_folder(run, models, user), temporary_data_folder(run, models, tmp_path / "none")
    try:
        assert (home / "runs" / "run").resolve() == run.resolve() and (home / "models").resolve() == models.resolve()
        assert (home / "throughput.json").read_text() == '{"k": {}}' and not (home / "throughput.json").is_symlink()
        assert (home / "general-answers").resolve() == (user / "general-answers").resolve()
        assert (bare / "runs" / "run").is_dir() and not (bare / "throughput.json").exists()
    finally:
        shutil.rmtree(home), shutil.rmtree(bare)
