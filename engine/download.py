"""Fetch published files from the Python package index without pip, so the same code runs frozen and not.

The index's JSON API (https://pypi.org/pypi/<project>/json) lists every file of a release with its URL,
size and sha256. A file is streamed to `<name>.partial`, checked against that hash and size, and only
then renamed, so a cut or altered download never passes for a good one. Every failure becomes a
DownloadError whose message says what really went wrong (no network, a blocked connection, a full
disk, a changed file) and what to do; `kind` names the cause for callers and tests.

TUNESMITH_INDEX_URL points at a company mirror with the same JSON API; HTTPS_PROXY is honoured.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urljoin, urlparse

from engine.errors import TunesmithError

DEFAULT_INDEX = "https://pypi.org/pypi"
TIMEOUT_S = 30
CHUNK = 1 << 20
MB = 1_000_000
# Room left free beyond what a file needs: a disk filled to the last byte breaks other programs.
SPARE_BYTES = 100 * MB
MOVE_WAYS = "(the Data folder button at the bottom of the window, or `tunesmith-cli data --move FOLDER`)"
MOVE_HINT = f"move Tunesmith's data folder to a larger drive {MOVE_WAYS}"

ByteProgress = Callable[[int, int], None]  # (bytes done, bytes in all)


class DownloadError(TunesmithError, RuntimeError):
    """A download that failed; the message says why and what to do.

    kind: offline | blocked | timeout | cut | server | missing | hash | disk | permission | cancelled | other
    """

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class IndexFile:
    """One file of a release as the index lists it."""

    project: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int
    has_metadata: bool = False  # the index serves its METADATA alone at url + ".metadata" (PEP 658)


def index_url() -> str:
    return os.environ.get("TUNESMITH_INDEX_URL", DEFAULT_INDEX).rstrip("/")


def human_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}" if count < 10 * size else f"{count / size:.0f} {unit}"
    return f"{int(count)} bytes"


def _ssl_context() -> ssl.SSLContext:
    """The system's certificates plus certifi's: a frozen bundle may not find the system's on its own,
    and a company's own certificate authority only lives in the system's store."""
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    return context


def _open(url: str, headers: Optional[dict] = None):
    request = urllib.request.Request(url, headers={"User-Agent": "tunesmith", **(headers or {})})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S, context=_ssl_context())


def explain(exc: BaseException, what: str, url: str = "", folder: Optional[Path] = None) -> DownloadError:
    """Turn a failure while fetching `what` into a DownloadError that names the real cause."""
    host = urlparse(url).hostname or "the package index"
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
        if code in (401, 403, 407, 451):
            proxy = " (the proxy asks to sign in)" if code == 407 else ""
            return DownloadError(f"Could not download {what}: {host} refused it (HTTP {code}){proxy}. Something on "
                                 "this network blocks the package index. Ask its administrator to allow pypi.org "
                                 "and files.pythonhosted.org, or set HTTPS_PROXY to the proxy you are meant to use.",
                                 "blocked")
        if code == 404:
            return DownloadError(f"Could not download {what}: {host} does not have it (HTTP 404). If "
                                 "TUNESMITH_INDEX_URL points at a mirror, it lacks this file; otherwise the release "
                                 "was withdrawn and Tunesmith needs an update.", "missing")
        return DownloadError(f"Could not download {what}: {host} answered with an error (HTTP {code}). The "
                             "index is having trouble; try again in a few minutes.", "server")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return explain(exc.reason, what, url, folder)
    proxy = _proxy_for(url)
    tunnel = re.match(r"Tunnel connection failed: (\d+)", str(exc)) if isinstance(exc, OSError) else None
    if tunnel:  # http.client's words when the proxy answers CONNECT with an error
        code = int(tunnel.group(1))
        todo = ("It asks to sign in: put your user name and password in HTTPS_PROXY "
                "(http://user:password@host:port)." if code == 407 else
                "Ask the network's administrator to allow pypi.org and files.pythonhosted.org.")
        return DownloadError(f"Could not download {what}: the proxy {proxy or 'in HTTPS_PROXY'} would not connect to "
                             f"{host} (HTTP {code}). {todo}", "blocked")
    if proxy and isinstance(exc, ConnectionRefusedError):
        return DownloadError(f"Could not download {what}: nothing answers at the proxy {proxy} (HTTPS_PROXY). "
                             "Correct HTTPS_PROXY, or unset it if this network needs no proxy.", "blocked")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or exc
        return DownloadError(f"Could not download {what}: the secure connection to {host} could not be verified "
                             f"({reason}). A proxy or security program on this network is intercepting HTTPS. "
                             "Ask its administrator for its certificate and point SSL_CERT_FILE at it, or use "
                             "another network.", "blocked")
    if isinstance(exc, ssl.SSLError):
        return DownloadError(f"Could not download {what}: the secure connection to {host} failed ({exc.reason}). "
                             "A proxy or firewall may be interfering; try another network.", "blocked")
    if isinstance(exc, socket.gaierror):
        return DownloadError(f"Could not download {what}: this computer is not connected to the internet (the "
                             f"name {host} could not be looked up). Connect and try again.", "offline")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DownloadError(f"Could not download {what}: {host} did not answer within {TIMEOUT_S} s. The "
                             "connection is very slow, or a firewall silently drops it. Try again, or on "
                             "another network.", "timeout")
    if isinstance(exc, ConnectionRefusedError):
        return DownloadError(f"Could not download {what}: the connection to {host} was refused. A firewall or "
                             "proxy blocks it; if this network needs a proxy, set HTTPS_PROXY.", "blocked")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead,
                        http.client.RemoteDisconnected)):
        return DownloadError(f"Could not download {what}: the connection to {host} was cut in the middle. Try "
                             "again; if it keeps happening, a firewall or proxy is ending it.", "cut")
    local = disk_problem(exc, what, folder)
    if local is not None:
        return local
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH):
        return DownloadError(f"Could not download {what}: this computer is not connected to a network that "
                             f"reaches {host} ({exc.strerror}). Connect and try again.", "offline")
    return DownloadError(f"Could not download {what}: {type(exc).__name__}: {exc}", "other")


def disk_problem(exc: BaseException, what: str, folder: Optional[Path] = None) -> Optional[DownloadError]:
    """A full disk or a folder Tunesmith may not write, in plain words; None for any other failure."""
    code = _os_errno(exc)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        where = f" in {folder}" if folder else ""
        return DownloadError(f"Could not save {what}: the disk is full{where}. Free some space, or {MOVE_HINT}.",
                             "disk")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DownloadError(f"Could not save {what}: Tunesmith may not write to "
                             f"{folder or getattr(exc, 'filename', None) or 'its data folder'} ({os.strerror(code)}). "
                             f"Give yourself write access to it, or move Tunesmith's data folder to one you "
                             f"can write {MOVE_WAYS}.", "permission")
    return None


def _os_errno(exc: BaseException) -> Optional[int]:
    """The operating system's error number behind `exc`. safetensors' writer (Rust) raises SafetensorError,
    not OSError, and keeps the number only in its message: "I/O error: No space left on device (os error 28)"."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def _proxy_for(url: str) -> str:
    """host:port of the proxy urllib sends `url` through ('' for none), as HTTPS_PROXY/HTTP_PROXY and NO_PROXY
    say. Only host and port: a proxy address may carry a password, which must not end up in a message."""
    parts = urlparse(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return ""
    proxy = urlparse(urllib.request.getproxies().get(parts.scheme or "https", ""))
    if not proxy.hostname:
        return ""
    return f"{proxy.hostname}:{proxy.port}" if proxy.port else proxy.hostname


def check_free_space(folder: Path, need: int, what: str) -> None:
    """Refuse early, before anything is written, when `folder`'s drive cannot hold `need` more bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need + SPARE_BYTES:
        raise DownloadError(f"Not enough disk space for {what}: it needs {human_bytes(need)} in {folder}, and that "
                            f"drive has {human_bytes(free)} free. Free some space, or {MOVE_HINT}.", "disk")


def fetch_bytes(url: str, what: str, headers: Optional[dict] = None) -> bytes:
    """A small resource (JSON, metadata) in memory."""
    try:
        with _open(url, headers) as response:
            return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise explain(exc, what, url) from exc


def fetch_range(url: str, start: int, stop: int, what: str) -> bytes:
    """Bytes start..stop (inclusive) of a file on a server; None of the rest is transferred."""
    try:
        with _open(url, {"Range": f"bytes={start}-{stop}"}) as response:
            if response.status != 206:  # the server ignores Range: it would send the whole file
                raise DownloadError(f"Could not look into {what}: {urlparse(url).hostname} does not serve parts of "
                                    "files (HTTP Range).", "server")
            return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise explain(exc, what, url) from exc


def _index_json(url: str, what: str) -> dict:
    data = fetch_bytes(url, what)
    try:
        return json.loads(data)
    except ValueError:
        raise DownloadError(f"Could not download {what}: {url} did not answer with the package index's JSON. "
                            "A captive portal (a hotel or airport sign-in page) or a proxy answered instead; "
                            "sign in to the network in a browser, then try again.", "blocked") from None


def _files(entries: list, listing_url: str, project: str, version: str) -> list[IndexFile]:
    return [IndexFile(project=project, version=version, filename=e["filename"], url=urljoin(listing_url, e["url"]),
                      sha256=e["digests"]["sha256"], size=int(e["size"]),
                      has_metadata=bool(e.get("core-metadata") or e.get("data-dist-info-metadata")))
            for e in entries]


def project_releases(project: str, what: str = "") -> dict[str, list[IndexFile]]:
    """Every release of `project` with its files, from the index's project document."""
    url = f"{index_url()}/{project}/json"
    releases = _index_json(url, what or f"the releases of {project}").get("releases") or {}
    return {version: _files(entries, url, project, version) for version, entries in releases.items()}


def release_files(project: str, version: str, what: str = "") -> list[IndexFile]:
    """Every file the index lists for `project` `version` (URLs made absolute); `what` names it for messages."""
    what = what or f"the file list of {project} {version}"
    url = f"{index_url()}/{project}/{version}/json"
    try:
        return _files(_index_json(url, what).get("urls", []), url, project, version)
    except DownloadError as exc:
        if exc.kind != "missing":
            raise
    # Some mirrors serve only the project-wide document; it lists every release.
    files = project_releases(project, what).get(version)
    if not files:
        raise DownloadError(f"Could not download {what}: the package index has no {project} {version}. "
                            "Tunesmith needs an update, or the mirror in TUNESMITH_INDEX_URL lacks it.",
                            "missing") from None
    return files


def download(file: IndexFile, folder: Path, progress: Optional[ByteProgress] = None,
             cancelled: Callable[[], bool] = lambda: False, what: str = "") -> Path:
    """Stream `file` into `folder`, check its size and sha256, and return its final path.

    A file already there with the right size is trusted (it was renamed only after its check).
    """
    what = f"{what or file.filename} ({human_bytes(file.size)})"
    target = folder / file.filename
    if target.is_file() and target.stat().st_size == file.size:
        return target
    check_free_space(folder, file.size, what)
    partial = folder / (file.filename + ".partial")
    digest, done = hashlib.sha256(), 0
    try:
        with _open(file.url) as response, open(partial, "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, file.size)
                if cancelled():
                    raise DownloadError(f"The download of {file.filename} was cancelled.", "cancelled")
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, http.client.HTTPException) as exc:
        partial.unlink(missing_ok=True)
        raise explain(exc, what, file.url, folder) from exc
    if done != file.size:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"Could not download {what}: the connection ended after {human_bytes(done)}. Try "
                            "again; if it keeps happening, a firewall or proxy is cutting it.", "cut")
    if digest.hexdigest() != file.sha256:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"The downloaded {file.filename} is not the file the package index published (its "
                            "sha256 differs), so it was deleted. A proxy or security program on this network "
                            "changed it; try again on another network.", "hash")
    partial.replace(target)
    return target


class Rate:
    """Bytes per second over a download, for 'about N minutes left' messages."""

    def __init__(self):
        self.start = time.monotonic()

    def text(self, done: int, total: int) -> str:
        elapsed = time.monotonic() - self.start
        if done <= 0 or elapsed < 1:
            return f"{human_bytes(done)} of {human_bytes(total)}"
        rate = done / elapsed
        left = (total - done) / rate
        eta = f"{left / 60:.0f} min left" if left >= 90 else f"{left:.0f} s left"
        return f"{human_bytes(done)} of {human_bytes(total)}, {human_bytes(rate)}/s, {eta}"
