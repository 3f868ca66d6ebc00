"""The data folder as a whole: what is in it and how big each part is, moving it, and removing it all.

A move is copy, verify, switch: every file is copied with its sha256 taken on the way, read back from
the new place and compared, and only then does Tunesmith switch to the new folder (engine.paths'
location file) and delete the old copy. A failure before the switch deletes the partial copy and
leaves everything as it was, so a move never loses a run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from engine import download, paths
from engine.errors import TunesmithError

# (folder in the data folder, what the user calls it)
PARTS = (("models", "Models"), ("runs", "Training runs"), ("runtime", "GPU support"),
         ("downloads", "Downloads"), ("logs", "Logs"))
NEW_ROOT_NAME = "tunesmith"
REWRITE_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")  # small files that may name paths in the data folder
REWRITE_MAX_BYTES = 20_000_000

Progress = Callable[[str, float], None]


class StorageError(TunesmithError, RuntimeError):
    """The data folder cannot be moved or read as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Part:
    key: str
    label: str
    path: Path
    size_bytes: int


def folder_size(path: Path) -> int:
    """Bytes of the files under `path`, symbolic links not followed (a linked model is not counted twice)."""
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def usage(root: Optional[Path] = None) -> list[Part]:
    """Each part of the data folder with its size, then "Other" (window state and the like)."""
    root = root or paths.data_dir()
    parts = [Part(key, label, root / key, folder_size(root / key)) for key, label in PARTS]
    known = {key for key, _ in PARTS}
    other = sum(folder_size(p) for p in root.iterdir() if p.name not in known) if root.is_dir() else 0
    return parts + [Part("other", "Settings and other files", root, other)]


def _new_root(target: Path, old: Path) -> Path:
    """The folder the data will live in: `target` itself when empty, else a new `tunesmith` inside it."""
    target = Path(target).expanduser().resolve()
    old = old.resolve()
    root = target / NEW_ROOT_NAME if target.is_dir() and any(target.iterdir()) else target
    if root == old:
        raise StorageError(f"The data folder is already {old}.")
    if root.is_relative_to(old) or old.is_relative_to(root):
        raise StorageError(f"{target} is inside the data folder (or holds it); choose a folder elsewhere.")
    if root.exists() and any(root.iterdir()):
        raise StorageError(f"{root} already holds files; choose an empty folder.")
    return root


def _copy_file(src: Path, dst: Path) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(download.CHUNK):
            fout.write(chunk)
            digest.update(chunk)
    shutil.copystat(src, dst)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(download.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _rewrite_paths(root: Path, old: Path) -> None:
    """Small JSON/YAML files (run-info.json's base_model_path, run.yaml, window state) name files in the
    data folder by absolute path: make them name the new place."""
    forms = [(str(old), str(root)), (json.dumps(str(old))[1:-1], json.dumps(str(root))[1:-1])]
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.suffix not in REWRITE_SUFFIXES or path.is_symlink() or path.stat().st_size > REWRITE_MAX_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            changed = text
            for before, after in forms:
                changed = re.sub(re.escape(before) + r"(?=[/\\\"'\s]|$)", lambda _m, a=after: a, changed,
                                 flags=re.MULTILINE)
            if changed != text:
                temp = path.with_name(path.name + ".moving")
                temp.write_text(changed, encoding="utf-8", errors="surrogateescape")
                os.replace(temp, path)


def _switch(root: Path) -> None:
    pointer = paths.location_file()
    if root == paths.default_data_dir().resolve():
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    temp = pointer.with_name(pointer.name + ".new")
    temp.write_text(str(root) + "\n", encoding="utf-8")
    os.replace(temp, pointer)


def move_data(target: Path, progress: Optional[Progress] = None) -> Path:
    """Move the whole data folder into `target` (copy, verify, switch, delete the old); returns the new root."""
    if os.environ.get("TUNESMITH_HOME"):
        raise StorageError("The data folder is set by the TUNESMITH_HOME variable; change that variable instead.")
    old = paths.data_dir().resolve()
    root = _new_root(Path(target), old)
    files, folders = [], []
    for folder, dirs, names in os.walk(old):  # links to folders come as dirs and are not followed
        folders += [Path(folder) / d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        files += [Path(folder) / name for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]]
    total = sum(os.lstat(f).st_size for f in files) or 1
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        download.check_free_space(root, total, "the data folder")
        for folder in folders:  # empty ones too
            (root / folder.relative_to(old)).mkdir(parents=True, exist_ok=True)
        hashes, done = {}, 0
        for src in files:
            dst = root / src.relative_to(old)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            hashes[dst] = _copy_file(src, dst)
            done += src.stat().st_size
            if progress:
                progress(f"Copying: {download.human_bytes(done)} of {download.human_bytes(total)}", 0.75 * done / total)
        for index, (dst, expected) in enumerate(hashes.items()):
            if progress and index % 20 == 0:
                progress("Checking every copied file...", 0.75 + 0.2 * index / max(1, len(hashes)))
            if _sha256(dst) != expected:
                raise StorageError(f"{dst} differs from the original after copying; the drive may be failing. "
                                   f"Nothing was moved: the data folder is still {old}.")
        _rewrite_paths(root, old)
        _switch(root)
    except BaseException as exc:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:  # the user's own empty folder: empty it again, keep it
            for child in list(root.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            problem = download.disk_problem(exc, "the data folder", root)
            raise StorageError((str(problem) if problem else f"Copying failed: {exc}.") +
                               f" Nothing was moved: the data folder is still {old}.") from exc
        raise
    if progress:
        progress("Removing the old copy...", 0.97)
    shutil.rmtree(old, ignore_errors=True)
    if progress:
        progress(f"The data folder is now {root}.", 1.0)
    return root


def remove_everything() -> list[Path]:
    """Delete the data folder, the note of where it is, and the menu entry; returns what was removed."""
    from engine import desktop

    removed = []
    root = paths.data_dir(create=False)
    if root.exists():
        shutil.rmtree(root)
        removed.append(root)
    pointer = paths.location_file()
    if pointer.exists():
        pointer.unlink()
        removed.append(pointer)
    removed += desktop.remove_entry()
    return removed
