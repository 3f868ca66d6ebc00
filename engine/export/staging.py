"""Writing exports so that they are either complete or absent.

Everything is written into a hidden staging folder beside the destination (same filesystem, so
the final step is a rename) and published only once it is complete. Any failure, Ctrl+C
included, removes the staging folder, so a half-written model is never left behind.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.export.errors import ExportError

# Headroom on top of the estimate: filesystems round up, and metadata and tokenizers add a little.
_SPACE_MARGIN_FRACTION = 0.05
_SPACE_MARGIN_BYTES = 16 * 2**20


def human_size(num_bytes: float) -> str:
    """1536 -> '1.5 KB'; used in messages the user reads."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GB"


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Refuse to start an export that cannot fit on the disk holding `folder`."""
    free = shutil.disk_usage(folder).free
    wanted = int(needed_bytes * (1 + _SPACE_MARGIN_FRACTION)) + _SPACE_MARGIN_BYTES
    if free < wanted:
        raise ExportError(f"Not enough free disk space in {folder}: this export needs about "
                          f"{human_size(wanted)}, but only {human_size(free)} is free. Free some space "
                          "or choose a destination on another disk.")


def check_destination(target: Path, *, overwrite: bool) -> None:
    """Fail before any work if `target` is taken (an empty folder counts as free)."""
    if not target.exists():
        return
    if target.is_dir() and not any(target.iterdir()):
        return
    if not overwrite:
        kind = "folder" if target.is_dir() else "file"
        raise ExportError(f"{target}: this {kind} already exists. Choose another destination, delete it, "
                          "or allow overwriting (--force).")


def existing_parent(target: Path) -> Path:
    """The destination's folder, created if needed (that is where staging happens)."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{parent}: cannot create this folder ({exc.strerror}). Choose another destination.") from None
    if not os.access(parent, os.W_OK):
        raise ExportError(f"{parent}: this folder is not writable. Choose another destination.")
    return parent


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A private folder beside `target`; removed at the end whatever happens.

    Publish what it holds with publish_folder/publish_files before the block ends.
    """
    parent = existing_parent(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the published folder should read like any other
    try:
        yield staging
    finally:
        # BaseException included: a KeyboardInterrupt must not leave gigabytes of partial weights behind.
        shutil.rmtree(staging, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def publish_folder(staging: Path, target: Path) -> Path:
    """Make the staged folder `target` (replacing an empty folder or one the user let us overwrite)."""
    if target.exists() or target.is_symlink():
        _remove(target)
    staging.rename(target)
    return target


def publish_files(staging: Path, folder: Path, names: list[str]) -> None:
    """Move the named staged files into `folder`, replacing files of the same name."""
    for name in names:
        os.replace(staging / name, folder / name)
