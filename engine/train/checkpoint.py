"""Checkpoints that are complete or absent: written to a temporary folder, then renamed.

A checkpoint holds what a resume needs to continue the same loss curve: the trainable weights,
the optimizer and scheduler state, the random number generators and the loop's counters
(`state.json`, written last). Folders without `state.json` were left by a kill; they are removed.
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

PREFIX = "step-"
TEMP_PREFIX = ".incomplete-"
STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters being trained (the adapter, or everything for full fine-tuning)."""
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    """Copy saved trainable weights back into the model (names must match)."""
    saved = load_file(str(Path(path) / WEIGHTS_FILE))
    params = dict(model.named_parameters())
    missing = [name for name in saved if name not in params]
    if missing:
        raise RuntimeError(f"{path}: checkpoint does not match this model (e.g. {missing[0]}).")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    """Write checkpoints/step-NNNNNN atomically and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    temp = folder / (TEMP_PREFIX + final.name)
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    save_file(trainable_state(model), str(temp / WEIGHTS_FILE))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               temp / "training-state.pt")
    (temp / STATE_FILE).write_text(json.dumps(dict(state, step=step), indent=2), encoding="utf-8")
    if final.exists():  # the same step saved again (e.g. a stop right after a save)
        shutil.rmtree(final)
    os.replace(temp, final)
    return final


def is_complete(path: Path) -> bool:
    return path.is_dir() and path.name.startswith(PREFIX) and (path / STATE_FILE).is_file()


def clean_incomplete(folder: Path) -> list[Path]:
    """Remove checkpoint folders a kill left half-written; returns what was removed."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_dir() and (path.name.startswith(TEMP_PREFIX) or
                                  (path.name.startswith(PREFIX) and not is_complete(path))):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_complete(p)), key=step_of)


def latest_checkpoint(folder: Path) -> Optional[Path]:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def read_state(path: Path) -> dict:
    return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; returns its state.json."""
    load_trainable(model, path)
    saved = torch.load(Path(path) / "training-state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"])
    return read_state(path)


def prune(folder: Path, keep: int, protect: Optional[int]) -> None:
    """Keep the `keep` newest checkpoints plus the one at step `protect` (the best so far)."""
    found = list_checkpoints(folder)
    for path in found[:-keep] if keep > 0 else found:
        if step_of(path) != protect:
            shutil.rmtree(path, ignore_errors=True)
