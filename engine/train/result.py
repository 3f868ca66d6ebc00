"""A run's trained result, for chat, evaluation and export: the final one, or one built from a checkpoint.

A run that ended writes RUN/adapter (RUN/model for full fine-tuning). A run that was killed,
crashed or went unstable has none, but its complete checkpoints hold the trained weights: the
result is then built once from the best checkpoint (else the newest readable one) into
RUN/checkpoints/step-N/adapter (or model), the same files training would have written, and reused.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from engine.train import checkpoint as ckpt
from engine.train.rundir import output_name, result_marker


def trained_result(run_dir: Path, info: dict) -> Optional[Path]:
    """The folder holding the run's trained weights (adapter or full model), or None when it has none.

    Raises CheckpointError only when a checkpoint asks to run code; damaged ones are passed over.
    """
    method = str(info.get("method") or "lora")
    final = Path(run_dir) / output_name(method)
    if (final / result_marker(method)).is_file():
        return final
    for checkpoint in _candidates(Path(run_dir) / "checkpoints", info.get("best_step")):
        built = checkpoint / output_name(method)
        if (built / result_marker(method)).is_file():
            return built
        try:
            return _build(checkpoint, Path(run_dir), info, method)
        except ckpt.CheckpointError as exc:
            if exc.unsafe:
                raise
    return None


def _candidates(folder: Path, best_step) -> list[Path]:
    """Complete checkpoints, best first (state.json's record when run-info.json has none), then newest first."""
    found = list(reversed(ckpt.list_checkpoints(folder)))
    if best_step is None and found:
        try:
            best_step = ckpt.read_state(found[0]).get("best_step")
        except ckpt.CheckpointError:
            best_step = None
    best = [path for path in found if best_step is not None and ckpt.step_of(path) == best_step]
    return best + [path for path in found if path not in best]


def _build(checkpoint: Path, run_dir: Path, info: dict, method: str) -> Path:
    weights = ckpt.read_trainable(checkpoint)
    target = checkpoint / output_name(method)
    work = Path(tempfile.mkdtemp(prefix=f".building-{target.name}-", dir=checkpoint))
    try:
        if method == "full":
            _write_full_model(weights, checkpoint, run_dir, Path(info["base_model_path"]), work)
        else:
            _write_adapter(weights, checkpoint, run_dir, Path(info["base_model_path"]), method, work)
        try:
            os.replace(work, target)
        except OSError:  # built meanwhile by another reader (two evaluations at once): use theirs
            if not (target / result_marker(method)).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _run_config(run_dir: Path):
    from engine import config as cfg

    path = run_dir / "run.yaml"
    return cfg.load(path) if path.is_file() else cfg.RunConfig()


def _write_adapter(weights: dict, checkpoint: Path, run_dir: Path, base: Path, method: str, out: Path) -> None:
    """The PEFT adapter folder training writes at its end, from the saved trainable weights.

    The model is built on the meta device (no base weights are read) and the saved tensors are
    assigned into it, so PEFT's own save_pretrained names and configures the files.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.train.methods import attach_method

    config = _run_config(run_dir)
    model_config = AutoConfig.from_pretrained(str(base))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    for p in model.parameters():
        p.requires_grad_(False)
    # Outside the meta context: PEFT's own small tensors (prompt token ids) must hold real values.
    model = attach_method(model, config, "lora" if method == "qlora" else method, torch.device("meta"))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != trainable:
        raise ckpt.CheckpointError(f"{checkpoint}: its weights do not match the run's settings in run.yaml "
                                   f"(e.g. {sorted(set(weights) ^ trainable)[0]}).")
    model.load_state_dict(weights, strict=False, assign=True)
    model.save_pretrained(str(out))


def _write_full_model(weights: dict, checkpoint: Path, run_dir: Path, base: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    ckpt.apply_trainable(model, weights, checkpoint)
    model.save_pretrained(str(out))
    tokenizer = run_dir / "tokenizer"
    if tokenizer.is_dir():
        for item in tokenizer.iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)
