"""The run folder: one per training run, laid out as docs/ARCHITECTURE.md describes.

    run.yaml  run-info.json  metrics.jsonl  val.jsonl  test.jsonl  checkpoints/  adapter/ (or model/)  tokenizer/
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Iterable, Optional

from engine import config as cfg
from engine import atomic, paths
from engine.errors import TunesmithError
from engine.events import Event

INFO_FILE = "run-info.json"
METRICS_FILE = "metrics.jsonl"
VAL_FILE = "val.jsonl"  # validation: chose the best step and stopped training early
TEST_FILE = "test.jsonl"  # test: never seen in training; what evaluation measures on
PLAN_FILE = "plan.json"


def default_run_dir(config: cfg.RunConfig, now: Optional[datetime] = None) -> Path:
    """runs/<YYYY-MM-DD_HHMM>_<data-stem>, with -2, -3... when that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H%M")
    stem = Path(config.data.path).stem or "run"
    base = paths.runs_dir() / f"{stamp}_{stem}"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


class RunFolderError(TunesmithError, ValueError):
    """A folder that is not a readable run; the message names the file and says what to do."""


def load_run_info(run_dir: Path, required: tuple[str, ...] = ("base_model_path",)) -> dict:
    """run-info.json of an existing run, with `required` keys present; RunFolderError in plain words.

    Chat, evaluation and export all start here, so a missing or damaged run reads the same everywhere.
    """
    path = Path(run_dir) / INFO_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir}: this is not a Tunesmith run folder (no {INFO_FILE}). "
                             "Choose the folder a training run created, under the data folder's runs/.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read ({exc}); the run folder is damaged.") from None
    missing = [key for key in required if not (isinstance(info, dict) and info.get(key))]
    if missing:
        raise RunFolderError(f"{path}: {' and '.join(repr(k) for k in missing)} missing; the run folder is damaged.")
    return info


def output_name(method: str) -> str:
    """The folder of a run's final trained weights: model/ for full fine-tuning, adapter/ otherwise."""
    return "model" if method == "full" else "adapter"


def result_marker(method: str) -> str:
    """The file whose presence makes a trained-weights folder complete."""
    return "config.json" if method == "full" else "adapter_config.json"


CHECKPOINT_PREFIX = "step-"
CHECKPOINT_STATE_FILE = "state.json"  # written last: a checkpoint folder without it is incomplete


def is_complete_checkpoint(path: Path) -> bool:
    path = Path(path)
    return (path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and path.name[len(CHECKPOINT_PREFIX):].isdigit()
            and (path / CHECKPOINT_STATE_FILE).is_file())


def complete_checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints in RUN/checkpoints, oldest first (half-written ones are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_complete_checkpoint(p)),
                  key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def has_trained_weights(run_dir: Path, method: str) -> bool:
    """Whether chat, evaluation and export can use the run: a final result or any complete checkpoint.

    Cheap (no model is loaded): engine.train.result builds the result from a checkpoint when asked.
    """
    run_dir = Path(run_dir)
    return (run_dir / output_name(method) / result_marker(method)).is_file() or \
        bool(complete_checkpoints(run_dir / "checkpoints"))


class RunFolder:
    """Writes the files of one run; `emit` appends an event to metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    @property
    def info_path(self) -> Path:
        return self.path / INFO_FILE

    def create(self, config: cfg.RunConfig, *, base_model_path: str, method: str, template: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        cfg.save(config, self.path / "run.yaml")
        info = self.read_info()
        info.update({"base_model_path": base_model_path, "method": method, "template": template,
                     "status": "running", "best_step": info.get("best_step"),
                     "created": info.get("created") or _now(), "finished": None})
        self.write_info(info)

    def write_plan(self, plan: dict) -> None:
        """RUN/plan.json: the training plan with its explanation (engine.train.plan.Plan.to_dict)."""
        (self.path / PLAN_FILE).write_text(json.dumps(plan, indent=2), encoding="utf-8")

    def read_info(self) -> dict:
        """run-info.json as a dict; {} when it is missing or damaged (a run killed before writing it)."""
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def write_info(self, info: dict) -> None:
        atomic.write_text(self.info_path, json.dumps(info, indent=2))

    def update_info(self, **changes) -> None:
        info = self.read_info()
        info.update(changes)
        self.write_info(info)

    def finish(self, status: str, best_step: Optional[int], *, reason: str = "", hint: str = "") -> None:
        """The final state: status completed | stopped | early_stopped | failed (with the reason and what to do)."""
        self.update_info(status=status, best_step=best_step, finished=_now(), reason=reason or None,
                         hint=hint or None)

    def emit(self, event: Event) -> None:
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(event.to_json() + "\n")

    def write_heldout(self, val_examples: Iterable, test_examples: Iterable) -> None:
        """val.jsonl and test.jsonl, one Example.to_dict per line; written even when empty, so that a
        run made with a test split can be told apart from a run made before there was one."""
        for name, examples in ((VAL_FILE, val_examples), (TEST_FILE, test_examples)):
            with open(self.path / name, "w", encoding="utf-8") as fh:
                for example in examples:
                    fh.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")

    def save_tokenizer(self, tokenizer) -> None:
        tokenizer.save_pretrained(str(self.path / "tokenizer"))

    def output_dir(self, method: str) -> Path:
        return self.path / output_name(method)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
