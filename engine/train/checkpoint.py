"""Checkpoints that are complete or absent: written to a temporary folder, then renamed.

A checkpoint holds what a resume needs to continue the same loss curve: the trainable weights,
the optimizer and scheduler state, the random number generators and the loop's counters
(`state.json`, written last). Folders without `state.json` were left by a kill; they are removed.
A step saved again replaces its old folder only once the new one is complete: the old one is
renamed aside first, so a kill at any moment leaves one complete copy (put back on the next start).

`training-state.pt` is read with `torch.load(weights_only=True)`: tensors and plain containers
only, so a run folder someone sent cannot run code when it is resumed.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from engine.train.rundir import (CHECKPOINT_PREFIX, CHECKPOINT_STATE_FILE, RunFolderError, complete_checkpoints,
                                 is_complete_checkpoint)

PREFIX = CHECKPOINT_PREFIX
TEMP_PREFIX = ".incomplete-"
ASIDE_PREFIX = ".replaced-"  # the previous copy of a step being saved again, until the new one is in place
ABANDONED_FOLDER = "abandoned-checkpoints"  # beside checkpoints/: later steps of a branch a resume left
STATE_FILE = CHECKPOINT_STATE_FILE
WEIGHTS_FILE = "trainable.safetensors"
TRAINING_STATE_FILE = "training-state.pt"


class CheckpointError(RunFolderError):
    """A checkpoint that cannot be used; `unsafe` when it holds code rather than data (never loaded)."""

    def __init__(self, message: str, *, unsafe: bool = False):
        super().__init__(message)
        self.unsafe = unsafe


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


# ----------------------------------------------------------------------------- trainable weights
def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters being trained (the adapter, or everything for full fine-tuning)."""
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def read_trainable(path: Path) -> dict[str, torch.Tensor]:
    """The saved trainable weights of a checkpoint; CheckpointError when the file is damaged."""
    file = Path(path) / WEIGHTS_FILE
    try:
        return load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for torn or foreign files
        raise CheckpointError(f"{file}: the weights cannot be read ({_first_line(exc)}); the file is "
                              "damaged.") from None


def apply_trainable(model: torch.nn.Module, saved: dict[str, torch.Tensor], path: Path) -> None:
    """Copy saved trainable weights into the model (names and shapes must match)."""
    params = dict(model.named_parameters())
    wrong = [name for name, tensor in saved.items() if name not in params or params[name].shape != tensor.shape]
    if wrong:
        raise CheckpointError(f"{path}: checkpoint does not match this model (e.g. {wrong[0]}).")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    """Copy a checkpoint's trainable weights back into the model."""
    apply_trainable(model, read_trainable(path), path)


# ----------------------------------------------------------------------------- random generators
def _rng_state() -> dict:
    # Python's generator state as plain lists: what weights_only loading accepts, no pickled objects.
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- writing
def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    """Write checkpoints/step-NNNNNN atomically and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    temp = folder / (TEMP_PREFIX + final.name)
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        save_file(trainable_state(model), str(temp / WEIGHTS_FILE))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
                   temp / TRAINING_STATE_FILE)
        (temp / STATE_FILE).write_text(json.dumps(dict(state, step=step), indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)  # a full disk must not keep half a checkpoint taking space
        raise
    if final.exists():  # the same step saved again (e.g. a stop right after a save)
        aside = folder / (ASIDE_PREFIX + final.name)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(temp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temp, final)
    return final


def prune(folder: Path, keep: int, protect: Optional[int]) -> None:
    """Keep the `keep` newest checkpoints plus the one at step `protect` (the best so far)."""
    found = list_checkpoints(folder)
    for path in found[:-keep] if keep > 0 else found:
        if step_of(path) != protect:
            shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- finding and tidying
def is_complete(path: Path) -> bool:
    return is_complete_checkpoint(path)


def clean_incomplete(folder: Path) -> list[Path]:
    """Tidy what a kill left behind; returns the half-written folders that were removed.

    A step whose new copy was not yet in place gets its previous copy back.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for aside in folder.glob(ASIDE_PREFIX + "*"):
        original = folder / aside.name[len(ASIDE_PREFIX):]
        if is_complete(original):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            shutil.rmtree(original, ignore_errors=True)
            os.replace(aside, original)
    for path in folder.iterdir():
        if path.is_dir() and (path.name.startswith(TEMP_PREFIX) or
                              (path.name.startswith(PREFIX) and not is_complete(path))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    return complete_checkpoints(folder)


def latest_checkpoint(folder: Path) -> Optional[Path]:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def set_aside_later(folder: Path, step: int) -> list[Path]:
    """Move the checkpoints after `step` (the branch a resume from `step` abandons) out of the way.

    Left in place, pruning would rank them newest and could delete the resumed branch's checkpoints.
    They go to RUN/abandoned-checkpoints/, where nothing reads or prunes them; returns their new paths.
    """
    later = [path for path in list_checkpoints(folder) if step_of(path) > step]
    if not later:
        return []
    target = folder.parent / ABANDONED_FOLDER
    target.mkdir(exist_ok=True)
    moved = []
    for path in later:
        destination, n = target / path.name, 2
        while destination.exists():
            destination, n = target / f"{path.name}-{n}", n + 1
        os.replace(path, destination)
        moved.append(destination)
    return moved


# ----------------------------------------------------------------------------- reading
def read_state(path: Path) -> dict:
    """A checkpoint's state.json (step, best step, ...); CheckpointError when it is damaged."""
    file = Path(path) / STATE_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: cannot be read ({_first_line(exc)}); the checkpoint is damaged.") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{file}: it holds no step number; the checkpoint is damaged.")
    return state


def _read_training_state(path: Path) -> dict:
    import pickle

    file = Path(path) / TRAINING_STATE_FILE
    try:
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only accepts tensors and plain containers only: this file asks to build other objects.
        raise CheckpointError(
            f"{file}: this checkpoint holds Python objects that could run code ({_first_line(exc)}), so "
            "Tunesmith refuses to load it. Checkpoints written by Tunesmith never do: someone else made or "
            "changed this file. Resume only run folders you trust, or train again.", unsafe=True) from None
    except Exception as exc:  # a torn archive, a truncated file, an unreadable disk
        raise CheckpointError(f"{file}: cannot be read ({_first_line(exc)}); the checkpoint is damaged.") from None
    if not isinstance(saved, dict) or not {"optimizer", "scheduler", "rng"} <= set(saved):
        raise CheckpointError(f"{file}: not a Tunesmith training state; the checkpoint is damaged.")
    return saved


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; returns its state.json.

    Every file is read and checked before anything changes, so a damaged checkpoint (CheckpointError)
    leaves the model as it was and an older checkpoint can be tried instead.
    """
    path = Path(path)
    state = read_state(path)
    weights = read_trainable(path)
    saved = _read_training_state(path)
    apply_trainable(model, weights, path)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"])
    return state
