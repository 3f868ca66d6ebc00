"""Run history: the run folders under the data folder, read without loading any model (no Qt).

A run folder (docs/ARCHITECTURE.md) holds run-info.json, metrics.jsonl, val.jsonl, test.jsonl, checkpoints/,
adapter/ (or model/ for full fine-tuning) and eval/. A run that crashed early may lack some of
them; every reader here copes with missing or damaged files and says so in the summary instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine import paths
from engine.events import Failed, read_events
from engine.train.rundir import RunFolder, complete_checkpoints, has_trained_weights
from gui.training_curves import TrainingCurves

STATUS_WORDS = {"completed": "finished", "stopped": "stopped (kept)", "early_stopped": "stopped early (kept)",
                "failed": "failed", "running": "running or interrupted"}


@dataclass(frozen=True)
class RunSummary:
    """What the history list shows about one run."""

    path: Path
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.info.get("method", "?"))

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    @property
    def base_model_path(self) -> str:
        return str(self.info.get("base_model_path", ""))

    @property
    def best_step(self) -> Optional[int]:
        return self.info.get("best_step")

    @property
    def has_result(self) -> bool:
        """Trained weights exist (the final ones or a complete checkpoint): chat, evaluation and export work."""
        return has_trained_weights(self.path, self.method)

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.path)

    def label(self) -> str:
        """'2026-11-22_1530_support-bot · lora · finished'."""
        return f"{self.name} · {self.method} · {self.status_words}"

    def two_line_label(self) -> str:
        """The name, and under it the method and outcome (for narrow lists)."""
        best = f" · best step {self.best_step}" if self.best_step is not None else ""
        return f"{self.name}\n{self.method} · {self.status_words}{best}"


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """run-info.json as a dict; {} when it is missing or damaged (a run killed before writing it)."""
    return RunFolder(Path(run_dir)).read_info()


def is_run_dir(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).exists() for name in ("run-info.json", "metrics.jsonl", "run.yaml"))


def list_runs(root: Optional[Path] = None) -> list[RunSummary]:
    """Every run folder under `root` (default: the data folder's runs/), newest first."""
    root = Path(root) if root is not None else paths.runs_dir()
    if not root.is_dir():
        return []
    runs = [RunSummary(folder, read_run_info(folder)) for folder in root.iterdir() if is_run_dir(folder)]
    return sorted(runs, key=lambda run: (str(run.info.get("created", "")), run.path.stat().st_mtime), reverse=True)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (checkpoints/step-NNNNNN with its state.json), oldest first: a folder a kill
    left half-written is never offered for resuming."""
    return complete_checkpoints(Path(run_dir) / "checkpoints")


def record_failure(run_dir: str | Path, failed: Failed) -> None:
    """A worker that died without a word (killed, crashed in native code) could not mark its run folder:
    the window does, so the run reads "failed" with the reason rather than "running" forever."""
    folder = RunFolder(Path(run_dir))
    info = folder.read_info()
    if info.get("status") == "running":
        folder.finish("failed", info.get("best_step"), reason=failed.reason, hint=failed.hint)


def load_events(run_dir: str | Path) -> list:
    """Everything the run reported, in order, from its metrics.jsonl (empty when it has none)."""
    metrics = Path(run_dir) / "metrics.jsonl"
    return read_events(metrics) if metrics.is_file() else []


def load_curves(run_dir: str | Path) -> TrainingCurves:
    """The run's curves and outcome from metrics.jsonl (empty curves when it has none)."""
    return TrainingCurves.from_events(load_events(run_dir))


def read_eval_results(run_dir: str | Path) -> Optional[dict[str, Any]]:
    """The newest evaluation results saved under RUN/eval/ (a .json object), or None."""
    folder = Path(run_dir) / "eval"
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None
