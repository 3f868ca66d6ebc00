"""Reading a finished training run: what was trained, from which base model, and where it lies.

The layout is the one `engine.train.rundir` writes (docs/ARCHITECTURE.md): run-info.json names
the base model and the method, adapter/ holds a PEFT adapter (full fine-tuning: model/), and
tokenizer/ holds the tokenizer with the chat template used in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

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
    trained_dir: Optional[Path]  # RUN/adapter (RUN/model), or one built from a checkpoint; None: nothing yet
    trust_remote_code: bool = False  # the run was trained with model.trust_remote_code (engine.remote_code)

    @property
    def adapter_dir(self) -> Path:
        return self.trained_dir or self.run_dir / "adapter"

    @property
    def model_dir(self) -> Path:
        """The fully fine-tuned model (method 'full' only)."""
        return self.trained_dir or self.run_dir / "model"

    @property
    def from_checkpoint(self) -> bool:
        """The run never finished: its result comes from its best complete checkpoint."""
        return self.trained_dir is not None and self.trained_dir.parent.parent.name == "checkpoints"

    @property
    def is_full(self) -> bool:
        return self.method == "full"

    @property
    def name(self) -> str:
        return self.run_dir.name


def run_notices(source: RunSource) -> list[str]:
    """What the user should know about any export of this run."""
    if not source.from_checkpoint:
        return []
    step = source.trained_dir.parent.name.replace("step-", "").lstrip("0") or "0"
    return [f"This run did not finish; the export holds its checkpoint at step {step}."]


def read_run(run_dir: str | Path) -> RunSource:
    """Check that `run_dir` is a finished run and say what it holds; ExportError if it is not."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder. Choose a folder under the runs/ directory.")
    try:
        info = load_run_info(run_dir, required=("method", "base_model_path"))
    except RunFolderError as exc:
        raise ExportError(str(exc)) from None
    from engine.train.result import trained_result

    method, base = str(info["method"]), info["base_model_path"]
    source = RunSource(run_dir=run_dir, method=method, base_model_path=Path(base),
                       tokenizer_dir=run_dir / "tokenizer", trained_dir=trained_result(run_dir, info),
                       trust_remote_code=bool(info.get("trust_remote_code")))
    _check_outputs(source)
    return source


def _check_outputs(source: RunSource) -> None:
    """The trained result and the tokenizer must be there; the base model too unless training was full."""
    if source.is_full:
        if source.trained_dir is None:
            raise ExportError(f"{source.run_dir}: the run has no trained model yet (no model/ folder and no "
                              "complete checkpoint). Wait for its first checkpoint, or train again.")
    elif source.trained_dir is None:
        raise ExportError(f"{source.run_dir}: the run has no trained adapter yet (no adapter/ folder and no "
                          "complete checkpoint). Wait for its first checkpoint, or train again.")
    if not source.is_full and not (source.base_model_path / "config.json").is_file():
        raise ExportError(f"The base model this run was trained from is no longer at {source.base_model_path}. "
                          "Put it back there (or prepare it again with `tunesmith-cli setup` for the starter "
                          "model), then export again.")
    if not any(source.tokenizer_dir.glob("tokenizer*")):
        raise ExportError(f"{source.run_dir}: the run's tokenizer/ folder is missing or empty. "
                          "The run folder is damaged; train again to export it.")
