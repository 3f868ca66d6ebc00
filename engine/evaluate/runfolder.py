"""Reading a finished run folder (layout in docs/ARCHITECTURE.md) for chat and evaluation.

Everything the evaluation needs to know about a run comes through here, so a missing or damaged
piece is reported once, in plain words, naming the file and what to do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.errors import TunesmithError


class EvaluationError(TunesmithError):
    """A run folder that cannot be chatted with or evaluated; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class RunFolder:
    """Where the pieces of one run are, and what kind of run it is."""

    path: Path
    info: dict
    base_model_path: Path
    method: str
    tuned_path: Path  # the PEFT adapter folder, or the full model folder for full fine-tuning
    tokenizer_path: Path

    @property
    def is_full(self) -> bool:
        """Full fine-tuning keeps a complete model, so "base" must be loaded separately."""
        return self.method == "full"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def val_path(self) -> Path:
        return self.path / "val.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def max_length(self) -> int:
        """The longest example used in training (data.max_length in run.yaml), 512 when unknown."""
        config = self.config()
        return config.data.max_length if config else 512

    def config(self):
        """The run's RunConfig from run.yaml, or None when the file is missing."""
        from engine import config as config_module

        path = self.path / "run.yaml"
        return config_module.load(path) if path.is_file() else None

    def val_examples(self) -> list[dict[str, Any]]:
        """The held-out examples (Example.to_dict per line); an empty list when the run kept none."""
        if not self.val_path.is_file():
            return []
        examples = []
        with open(self.val_path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise EvaluationError(f"{self.val_path}, line {number}: not valid JSON. The file is written by "
                                          "training; train the run again to recreate it.") from None
                if not isinstance(item, dict) or not ("messages" in item or "text" in item):
                    raise EvaluationError(f"{self.val_path}, line {number}: expected an object with 'messages' "
                                          "or 'text'. Train the run again to recreate it.")
                examples.append(item)
        return examples


def _read_info(run_dir: Path) -> dict:
    from engine.train.rundir import RunFolderError, load_run_info

    try:
        return load_run_info(run_dir)
    except RunFolderError as exc:
        raise EvaluationError(str(exc)) from None


def _newest_checkpoint(run_dir: Path, marker: str, best_step: Optional[int]) -> Optional[Path]:
    """The best checkpoint if known, else the newest one holding `marker` (for stopped or crashed runs)."""
    folders = sorted((run_dir / "checkpoints").glob("step-*"))
    usable = [f for f in folders if (f / marker).is_file()]
    if best_step is not None:
        for folder in usable:
            if folder.name == f"step-{int(best_step):06d}":
                return folder
    return usable[-1] if usable else None


def open_run(run_dir) -> RunFolder:
    """Check a run folder and say where its pieces are; raises EvaluationError in plain words."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise EvaluationError(f"{run_dir}: no such run folder.")
    info = _read_info(run_dir)
    method = str(info.get("method") or "lora")
    base = Path(info["base_model_path"]).expanduser()
    if not (base / "config.json").is_file():
        raise EvaluationError(f"The base model this run was trained from is missing: {base}. Put the model folder "
                              "back (or import the model again with `tunesmith-cli models --import`).")
    marker = "config.json" if method == "full" else "adapter_config.json"
    final = run_dir / ("model" if method == "full" else "adapter")
    tuned = final if (final / marker).is_file() else _newest_checkpoint(run_dir, marker, info.get("best_step"))
    if tuned is None:
        raise EvaluationError(f"{run_dir}: the run has no trained result yet (no {final.name}/ folder and no "
                              "checkpoint). Wait for training to finish, or train again.")
    tokenizer = run_dir / "tokenizer"
    if not (tokenizer / "tokenizer_config.json").is_file():
        tokenizer = tuned if (tuned / "tokenizer_config.json").is_file() else base
    return RunFolder(path=run_dir, info=info, base_model_path=base, method=method, tuned_path=tuned,
                     tokenizer_path=tokenizer)
