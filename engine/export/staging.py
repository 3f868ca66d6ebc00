"""Writing exports so that they are either complete or absent, and never touch the user's own files.

Everything is written into a hidden staging folder beside the destination (same filesystem, so
the final step is a rename) and published only once it is complete. Any failure, Ctrl+C
included, removes the staging folder, so a half-written model is never left behind.

A destination folder is used only when it is new, empty, or an earlier export of ours (it holds
EXPORT_INFO, which lists the files that export wrote). Overwriting (--force) then replaces exactly
those files; anything else in the folder stays. A folder of other files is never written into.
"""
from __future__ import annotations

import json
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
EXPORT_INFO = "tunesmith-export.json"  # in every exported folder: where it came from, which files it wrote


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


def _earlier_export(folder: Path) -> bool:
    return (folder / EXPORT_INFO).is_file()


def check_destination(target: Path, *, overwrite: bool, folder: bool = True) -> None:
    """Fail before any work if `target` is taken (an empty folder counts as free).

    `folder`: the export writes a folder at `target` (else one file, e.g. model.gguf). Overwriting
    is allowed only for what an export writes: an earlier export's folder, or the file itself.
    """
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not any(target.iterdir()):
        return
    if folder and target.is_dir() and not _earlier_export(target):
        raise ExportError(f"{target}: this folder already holds other files and is not an earlier Tunesmith "
                          "export, so nothing is written into it (even with --force). Choose a new or empty "
                          f"folder, e.g. {target / 'tunesmith-export'}.")
    if not folder and target.is_dir():
        raise ExportError(f"{target}: a folder with this name already exists, and the export is one file. "
                          "Choose another file name.")
    if folder and not target.is_dir():
        raise ExportError(f"{target}: a file with this name already exists, and the export is a folder. "
                          "Choose another destination.")
    if not overwrite:
        kind = "folder (an earlier export)" if target.is_dir() else "file"
        raise ExportError(f"{target}: this {kind} already exists. Choose another destination, delete it, "
                          "or allow overwriting (--force), which replaces only the files the export writes.")


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


def _files_of_export(folder: Path) -> list[str]:
    """The names an earlier export wrote into `folder` (from its EXPORT_INFO; [] when unknown)."""
    try:
        info = json.loads((folder / EXPORT_INFO).read_text(encoding="utf-8"))
        names = info.get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    # Only plain names directly inside the folder: a tampered list must not reach outside it.
    return [name for name in names if isinstance(name, str) and name and Path(name).name == name
            and name not in (".", "..")]


def _record_files(staging: Path) -> list[str]:
    """Add the list of staged names to the staged EXPORT_INFO, so a later --force knows what is ours."""
    names = sorted(item.name for item in staging.iterdir())
    info_path = staging / EXPORT_INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info["files"] = names
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return names


def publish_folder(staging: Path, target: Path) -> Path:
    """Make the staged folder `target`: renamed into place when `target` is new or empty; into an earlier
    export's folder, its files replace that export's files and nothing else (check_destination came first)."""
    names = _record_files(staging)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        staging.rename(target)
        return target
    previous = _files_of_export(target)
    for name in names:  # the new files first: a kill half-way leaves new and old files, never fewer
        destination = target / name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(staging / name, destination)
    for name in previous:
        if name not in names:
            _remove(target / name)
    return target


def publish_files(staging: Path, folder: Path, names: list[str]) -> None:
    """Move the named staged files into `folder`, replacing files of the same name."""
    for name in names:
        os.replace(staging / name, folder / name)
