"""Reading a finished training run: what was trained, from which base model, and where it lies.

The layout is the one `engine.train.rundir` writes (docs/ARCHITECTURE.md): run-info.json names
the base model and the method, adapter/ holds a PEFT adapter (full fine-tuning: model/), and
tokenizer/ holds the tokenizer with the chat template used in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.export.errors import ExportError
from engine.train.rundir import RunFolderError, load_run_info

ADAPTER_METHODS = ("lora", "qlora")  # adapters that can be folded into the base weights
VIRTUAL_TOKEN_METHODS = ("prefix", "prompt")  # learned virtual tokens: adapter export only


@dataclass(frozen=True)
class RunSource:
    """Everything an export needs to know about one run folder."""

    run_dir: Path
    method: str
    base_model_path: Path
    tokenizer_dir: Path

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapter"

    @property
    def model_dir(self) -> Path:
        """The fully fine-tuned model (method 'full' only)."""
        return self.run_dir / "model"

    @property
    def is_full(self) -> bool:
        return self.method == "full"

    @property
    def name(self) -> str:
        return self.run_dir.name


def read_run(run_dir: str | Path) -> RunSource:
    """Check that `run_dir` is a finished run and say what it holds; ExportError if it is not."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder. Choose a folder under the runs/ directory.")
    try:
        info = load_run_info(run_dir, required=("method", "base_model_path"))
    except RunFolderError as exc:
        raise ExportError(str(exc)) from None
    method, base = str(info["method"]), info["base_model_path"]
    source = RunSource(run_dir=run_dir, method=method, base_model_path=Path(base),
                       tokenizer_dir=run_dir / "tokenizer")
    _check_outputs(source)
    return source


def _check_outputs(source: RunSource) -> None:
    """The trained result and the tokenizer must be there; the base model too unless training was full."""
    if source.is_full:
        if not (source.model_dir / "config.json").is_file():
            raise ExportError(f"{source.run_dir}: the run has no trained model yet (model/ is missing). "
                              "Wait for training to finish, or export a run that finished.")
    elif not (source.adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"{source.run_dir}: the run has no trained adapter yet (adapter/ is missing). "
                          "Wait for training to finish, or export a run that finished.")
    if not source.is_full and not (source.base_model_path / "config.json").is_file():
        raise ExportError(f"The base model this run was trained from is no longer at {source.base_model_path}. "
                          "Put it back there (or prepare it again with `tunesmith-cli setup` for the starter "
                          "model), then export again.")
    if not any(source.tokenizer_dir.glob("tokenizer*")):
        raise ExportError(f"{source.run_dir}: the run's tokenizer/ folder is missing or empty. "
                          "The run folder is damaged; train again to export it.")
