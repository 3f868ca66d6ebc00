"""Wheels on the package index, read and unpacked without pip (so it works the same inside a frozen bundle).

- `pick` chooses the file of a release that this Python and platform can use (packaging.tags);
- `remote_zip` opens a wheel on the index as a ZipFile read through HTTP range requests, so its
  METADATA (what it depends on) and its unpacked size are known without downloading it;
- `unpack` installs a downloaded wheel's files into a folder that then goes on sys.path.
"""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Optional

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from engine import download
from engine.download import DownloadError, IndexFile

BLOCK = 256 * 1024


def pick(files: list[IndexFile]) -> Optional[IndexFile]:
    """The wheel best suited to this interpreter and platform, or None when there is none."""
    rank = {tag: i for i, tag in enumerate(tags.sys_tags())}
    best, best_rank = None, len(rank)
    for file in files:
        if not file.filename.endswith(".whl"):
            continue
        file_rank = min((rank.get(tag, len(rank)) for tag in parse_wheel_filename(file.filename)[3]), default=len(rank))
        if file_rank < best_rank:
            best, best_rank = file, file_rank
    return best


class _RangeReader(io.RawIOBase):
    """A read-only, seekable view of a file on a web server, fetched in blocks with Range requests."""

    def __init__(self, file: IndexFile):
        super().__init__()
        self.file, self.pos, self.blocks = file, 0, {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.file.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        end = min(self.pos + len(buffer), self.file.size)
        if end <= self.pos:
            return 0
        first, last = self.pos // BLOCK, (end - 1) // BLOCK
        missing = [b for b in range(first, last + 1) if b not in self.blocks]
        if missing:  # one request for the whole run of missing blocks
            start, stop = missing[0] * BLOCK, min((missing[-1] + 1) * BLOCK, self.file.size) - 1
            data = download.fetch_range(self.file.url, start, stop, f"the description of {self.file.filename}")
            if len(data) != stop - start + 1:
                raise DownloadError(f"{self.file.url} sent {len(data)} bytes where {stop - start + 1} were asked "
                                    "for; try again.", "cut")
            for b in range(missing[0], missing[-1] + 1):
                self.blocks[b] = data[(b - missing[0]) * BLOCK:(b - missing[0] + 1) * BLOCK]
        chunk = b"".join(self.blocks[b] for b in range(first, last + 1))
        piece = chunk[self.pos - first * BLOCK:end - first * BLOCK]
        buffer[:len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


def remote_zip(file: IndexFile) -> zipfile.ZipFile:
    """The wheel on the index as a ZipFile; only the parts read are downloaded."""
    # Prefetch the tail, where the zip's table of contents lives, in one request.
    reader = _RangeReader(file)
    reader.seek(-min(file.size, 4 * BLOCK), io.SEEK_END)
    reader.read(1)
    return zipfile.ZipFile(io.BufferedReader(reader, BLOCK))


def _metadata_name(archive: zipfile.ZipFile) -> str:
    names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if not names:
        raise DownloadError(f"{archive.filename or 'a wheel'} has no METADATA; it is not a valid wheel.", "other")
    return names[0]


def requirements(archive: zipfile.ZipFile, extras: set[str] = frozenset()) -> list[Requirement]:
    """The wheel's dependencies that apply to this computer with `extras` asked for (markers evaluated)."""
    metadata = Parser().parsestr(archive.read(_metadata_name(archive)).decode("utf-8"))
    found = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    return [r for r in found
            if r.marker is None or any(r.marker.evaluate({"extra": extra}) for extra in {"", *extras})]


def unpacked_size(archive: zipfile.ZipFile) -> int:
    return sum(info.file_size for info in archive.infolist())


def unpack(wheel: Path, target: Path) -> None:
    """Install a wheel's files under `target` (its .data/purelib and platlib too), keeping executable bits."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = info.filename
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers and data files are not needed to import the package
                name = "/".join(parts[2:])
            if not name or name.endswith("/") or ".." in name.split("/"):
                continue
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, download.CHUNK)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode)  # triton's compiler binaries must stay executable


def same_name(a: str, b: str) -> bool:
    return canonicalize_name(a) == canonicalize_name(b)
