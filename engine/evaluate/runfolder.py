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
from engine.train.rundir import RunFolderError, load_run_info, output_name


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

    def completion_separator(self) -> str:
        """data.completion_separator of the run (plain text split into given and written part), or ""."""
        config = self.config()
        return config.data.completion_separator if config else ""

    def heldout(self) -> "HeldOut":
        """The examples evaluation measures on: the test rows, or validation rows for older runs."""
        return read_heldout(self.path)


VALIDATION_ONLY_NOTES = {
    "older run": "This run was trained before Tunesmith kept a test split, so these numbers come from its "
                 "validation examples. Those also chose the best step and when to stop, so they flatter the tuned "
                 "model a little. Train again for numbers on examples training never saw.",
    "no test rows": "This run kept no test examples (the test share was 0, or there was too little data), so these "
                    "numbers come from its validation examples. Those also chose the best step and when to stop, "
                    "so they flatter the tuned model a little. Keep a test share or give a test file.",
}


@dataclass(frozen=True)
class HeldOut:
    """Examples kept out of training (Example.to_dict each) and which part of the data they are.

    `part` is "test" (never seen in training) or "validation" (seen by early stopping and best-step
    choice; only for runs without test rows, and then `note` says why in plain words).
    """

    part: str
    rows: list
    path: Path
    note: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """What results.json records about the rows behind its numbers."""
        return {"part": self.part, "examples": len(self.rows), "file": self.path.name, "note": self.note}


def heldout_part(results: dict) -> str:
    """Which rows a results dict (RUN/eval/results.json) was measured on: "test", or "validation" for
    runs without test rows and for results saved before the test split (which always used validation)."""
    return (results.get("heldout") or {}).get("part") or "validation"


def read_heldout(run_dir) -> HeldOut:
    """The held-out rows of a run folder: RUN/test.jsonl, else RUN/val.jsonl with a note saying why."""
    from engine.train.rundir import TEST_FILE, VAL_FILE

    run_dir = Path(run_dir)
    test_path = run_dir / TEST_FILE
    test_rows = _read_examples(test_path)
    if test_rows:
        return HeldOut(part="test", rows=test_rows, path=test_path)
    note = VALIDATION_ONLY_NOTES["no test rows" if test_path.is_file() else "older run"]
    return HeldOut(part="validation", rows=_read_examples(run_dir / VAL_FILE), path=run_dir / VAL_FILE, note=note)


def _read_examples(path: Path) -> list[dict[str, Any]]:
    """Example.to_dict per line of a held-out file that training wrote; [] when the file is missing."""
    if not path.is_file():
        return []
    examples = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise EvaluationError(f"{path}, line {number}: not valid JSON. The file is written by "
                                      "training; train the run again to recreate it.") from None
            if not isinstance(item, dict) or not ("messages" in item or "text" in item):
                raise EvaluationError(f"{path}, line {number}: expected an object with 'messages' "
                                      "or 'text'. Train the run again to recreate it.")
            examples.append(item)
    return examples


def _read_info(run_dir: Path) -> dict:
    try:
        return load_run_info(run_dir)
    except RunFolderError as exc:
        raise EvaluationError(str(exc)) from None


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
    from engine.train.result import trained_result  # torch: imported only where a model is wanted

    # The final adapter/model, or one built from the best complete checkpoint of a stopped or crashed run.
    tuned = trained_result(run_dir, info)
    if tuned is None:
        raise EvaluationError(f"{run_dir}: the run has no trained result yet (no {output_name(method)}/ folder "
                              "and no complete checkpoint). Wait for its first checkpoint, or train again.")
    tokenizer = run_dir / "tokenizer"
    if not (tokenizer / "tokenizer_config.json").is_file():
        tokenizer = tuned if (tuned / "tokenizer_config.json").is_file() else base
    return RunFolder(path=run_dir, info=info, base_model_path=base, method=method, tuned_path=tuned,
                     tokenizer_path=tokenizer)
