"""The README's screenshots, taken from a real run folder and its real evaluation (never from test fakes).

    .venv/bin/tunesmith-cli train --data resources/sample_dataset.jsonl         # makes RUN_DIR
    .venv/bin/tunesmith-cli eval RUN_DIR --json                                 # RUN_DIR/eval/results.json
    .venv/bin/python docs/make_screenshots.py RUN_DIR                           # docs/screenshots/*.png

Opens the real window offscreen, in the app's own style, on the run's own dataset and settings (its
run.yaml), and saves each tab at 1280x800 (NAME.png, the ones the README shows) and 1920x1080
(NAME-1920x1080.png). The Training tab shows the run's curves from its metrics.jsonl, the Evaluation tab
the saved before/after numbers and general ability; there both models also answer one held-out example
through the real chat worker (a child process, as in the app; `--no-chat` skips it). Nothing here loads a
model or evaluates: the pictures show what the run folder holds.

The window sees a temporary data folder that holds only a link to this run, a link to your models
folder, a copy of your measured training speed and a link to the cached general answers, so the
pictures show this run alone and your own runs and window settings are left untouched.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
SIZES = ((1280, 800), (1920, 1080))
WAIT_S = 300  # the 600-row sample's token lengths take ~30 s on a busy 2-core machine; a chat turn as long


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="A run folder made by tunesmith-cli train and evaluated by "
                                                   "tunesmith-cli eval.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="Where the PNGs go.")
    parser.add_argument("--no-chat", action="store_true", help="Leave the side-by-side chat empty.")
    parser.add_argument("--example", type=int, default=0, metavar="SEED",
                        help="Which held-out example the chat shows (a seed; the same seed gives the same example).")
    return parser.parse_args(argv)


def pump(seconds: float) -> None:
    """Run the window's event loop for a while. Sleeping between rounds lets the window's worker threads
    have the GIL (QTest.qWait keeps it: their imports then took minutes instead of seconds)."""
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while True:
        QApplication.processEvents()
        if time.monotonic() >= end:
            return
        time.sleep(0.02)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Let the window work (its background jobs and child processes report through the event loop)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"Gave up after {timeout_s:.0f} s waiting for {what}.")
        pump(0.05)


def temporary_data_folder(run_dir: Path, models: Path, user_data: Path | None = None) -> Path:
    """A data folder whose runs/ holds only `run_dir` and whose models/ is the user's (both links). From the
    user's data folder it also takes the measured training speed (a copy) and the base models' cached
    answers to the general prompts (a link), so that the Method view shows the time estimate this machine
    gives instead of measuring again or counting the answers as still to write."""
    home = Path(tempfile.mkdtemp(prefix="tunesmith-"))
    (home / "runs").mkdir()
    (home / "runs" / run_dir.name).symlink_to(run_dir, target_is_directory=True)
    (home / "models").symlink_to(models, target_is_directory=True)
    if user_data is not None:
        from engine.train import timing
        from engine.train.keep_general import ANSWERS_FOLDER

        if (user_data / timing.CACHE_FILE).is_file():
            shutil.copyfile(user_data / timing.CACHE_FILE, home / timing.CACHE_FILE)
        if (user_data / ANSWERS_FOLDER).is_dir():
            (home / ANSWERS_FOLDER).symlink_to(user_data / ANSWERS_FOLDER, target_is_directory=True)
    return home


def run_config(run_dir: Path):
    """The settings the run was trained with; a dataset path relative to where training ran is found again."""
    from engine import config as cfg

    config = cfg.load(run_dir / "run.yaml")
    data = Path(config.data.path)
    if config.data.path and not data.is_file() and (REPO / data).is_file():
        config.data.path = str(REPO / data)
    config.out = ""
    return config


def open_window(config):
    from gui import style
    from gui.controller import Controller
    from gui.main_window import MainWindow

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    style.apply(app)
    window = MainWindow(Controller(config), prepare_model=True, restore=False, offer_menu_entry=False)
    window.resize(*SIZES[0])
    window.show()
    dataset = window.dataset_view
    wait_until(lambda: bool(dataset.preview.pieces) and bool(dataset.histogram.lengths),
               "the dataset's preview and token lengths")
    return window


def choose_run(window, run_dir: str) -> None:
    """Select the run as a user would: in the Training tab's history (its curves) and for the Evaluation tab."""
    from PySide6.QtCore import Qt

    history = window.training_view.history
    history.refresh()
    for row in range(history.list.count()):
        item = history.list.item(row)
        if item.data(Qt.ItemDataRole.UserRole) == run_dir:
            history.list.setCurrentItem(item)  # emits runChosen: the view loads the run's metrics.jsonl
    if history.current_run() != run_dir:
        raise SystemExit(f"The Training tab does not list {run_dir}.")
    window.controller.select_run(run_dir)


def chat_once(window, seed: int) -> None:
    """Ask both models one held-out example through the real chat worker."""
    from gui.main_window import TAB_NAMES

    view = window.evaluation_view
    window.tabs.setCurrentIndex(TAB_NAMES.index("Evaluation"))  # the chat worker starts when the tab shows
    wait_until(lambda: view.session is not None and view.session.is_ready, "the chat worker to load the model")
    finished = []
    view.turnFinished.connect(lambda: finished.append(True))
    if not view.try_held_out_example(seed=seed) or not view.send():
        raise SystemExit(f"The chat could not start: {view.chat_status.text()}")
    wait_until(lambda: bool(finished), "both models to answer")


def save_tabs(window, out: Path) -> list[Path]:
    from gui.main_window import TAB_NAMES

    saved = []
    for width, height in SIZES:
        window.resize(width, height)
        suffix = "" if (width, height) == SIZES[0] else f"-{width}x{height}"
        for index, name in enumerate(TAB_NAMES):
            window.tabs.setCurrentIndex(index)
            pump(0.4)  # layouts and the plot settle at the new size
            path = out / f"{name.lower()}{suffix}.png"
            if not window.grab().save(str(path)):
                raise SystemExit(f"Could not write {path}.")
            saved.append(path)
    return saved


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    run_dir = args.run_dir.resolve()
    for needed in ("run.yaml", "metrics.jsonl"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir} has no {needed}: give a run folder made by tunesmith-cli train.")
    from engine.evaluate.before_after import load_results

    if load_results(run_dir) is None:
        raise SystemExit(f"{run_dir} has no evaluation yet: run tunesmith-cli eval {run_dir} first.")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from engine import paths

    models = paths.models_dir()  # the user's, found before the data folder is switched below
    home = temporary_data_folder(run_dir, models, paths.data_dir())
    os.environ["TUNESMITH_HOME"] = str(home)
    window = None
    try:
        window = open_window(run_config(run_dir))
        choose_run(window, str(home / "runs" / run_dir.name))
        if not args.no_chat:
            chat_once(window, args.example)
        args.out.mkdir(parents=True, exist_ok=True)
        for path in save_tabs(window, args.out):
            print(path)
    finally:
        if window is not None:
            window.evaluation_view.shutdown()  # the chat worker ends with the pictures
            window.close()
        shutil.rmtree(home)  # removes the links, never what they point to
    return 0


if __name__ == "__main__":
    sys.exit(main())
