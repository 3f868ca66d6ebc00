"""Drive the whole window offscreen in a fresh process and say which ML libraries that process loaded.

Run as `python -m tests.window_probe MODEL_DIR` (tests/test_gui_no_ml_stack.py does). A fresh process
is the only honest check: the test process itself has long imported torch for other tests.
It prints one JSON line: {"loaded": [...], "first_import": {module: stack}, "seen": {...}}.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

WATCHED = ("torch", "transformers", "peft", "bitsandbytes")
WAIT_MS = 60000


class _ImportWatch:
    """A meta-path finder that only records where each watched library was first imported from."""

    def __init__(self):
        self.stacks: dict[str, str] = {}

    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in self.stacks:
            self.stacks[name] = "".join(traceback.format_stack(limit=25)[:-1])
        return None  # never loads anything itself


def main(model_dir: str) -> None:
    watch = _ImportWatch()
    sys.meta_path.insert(0, watch)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtWidgets import QApplication

    from engine import paths
    from engine.train import timing
    from gui import state
    from gui.controller import Controller
    from gui.main_window import TAB_NAMES, MainWindow
    from tests.preference_data import write_preference_file

    app = QApplication.instance() or QApplication([])
    config = state.default_config()
    config.model.name = model_dir
    config.training.keep_general = "on"  # the plan then prices keeping general ability (engine.train.preview)
    # Known rates, so that the plan panel prices the run in this process instead of calibrating in a child.
    timing.save_throughput(paths.data_dir(), timing.throughput_key(config, model_dir, "cpu"),
                           timing.Throughput(2e-11, 7e-12, 0.05, 0.01, 9.0, 0.05))
    window = MainWindow(Controller(config), prepare_model=True, restore=False)
    window.resize(1280, 800)
    window.show()
    dataset, method = window.dataset_view, window.method_view

    def wait_until(condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_MS / 1000
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}: {dataset.summary.text()!r} "
                                 f"{dataset.preview.text.toPlainText()[:200]!r}")
            app.processEvents()
            time.sleep(0.01)

    seen = {}
    wait_until(lambda: bool(window.controller.model_dir), "the model picker")
    window.tabs.setCurrentIndex(TAB_NAMES.index("Dataset"))
    wait_until(lambda: bool(dataset.preview.pieces) and bool(dataset.histogram.lengths), "the sample's preview")
    seen["learned"] = dataset.preview.trained_text()[:60]
    dataset.examples.table.selectRow(1)
    wait_until(lambda: window.controller.config.training.objective == "sft", "the objective")
    window.tabs.setCurrentIndex(TAB_NAMES.index("Method"))
    wait_until(lambda: method.hardware.last_estimate is not None, "the memory estimate")
    seen["memory"] = method.hardware.memory.text()
    wait_until(lambda: method.plan.estimate is not None, "the plan's time")
    seen["time"] = method.plan.time.text()
    seen["keep_note"] = method.plan.keep_note.text()
    window.tabs.setCurrentIndex(TAB_NAMES.index("Dataset"))
    dataset.open_file(str(write_preference_file(paths.data_dir() / "pairs.jsonl", 12)))
    wait_until(lambda: dataset.pair_preview.preview is not None,
               "the preference pair's preview")
    wait_until(lambda: bool(dataset.histogram.lengths) and window.controller.report.format == "preference",
               "the preference lengths")
    seen["pair_chosen"] = dataset.pair_preview.preview.chosen[:60]
    loaded = [name for name in WATCHED if name in sys.modules]
    window.close()
    print(json.dumps({"loaded": loaded, "first_import": watch.stacks, "seen": seen}))


if __name__ == "__main__":
    main(sys.argv[1])
