"""GPU support without a GPU: the device diagnosis from faked nvidia-smi/torch facts, and the CUDA runtime
installer against a fake package index (tiny wheels standing in for torch and the NVIDIA libraries)."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from engine import download, gpu_check, gpu_runtime
from engine.gpu_check import SmiFacts, diagnose

GIB = 1024 ** 3
CARD = SmiFacts("NVIDIA GeForce RTX 3060", 12 * GIB, 11 * GIB, "535.104.05", "12.2")


def _cuda(free=11 * GIB, total=12 * GIB, capability=(8, 6), cuda="12.8"):
    return {"cuda_build": cuda, "available": True, "error": "", "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90"],
            "devices": [{"name": CARD.name, "capability": list(capability), "free": free, "total": total}]}


def test_a_working_card_is_named_as_the_training_device():
    report = diagnose(CARD, _cuda())
    assert report.device == "cuda" and "RTX 3060" in report.summary and not report.problem


def test_no_card_means_the_processor_without_alarm():
    report = diagnose(None, {"cuda_build": None})
    assert report.device == "cpu" and "No NVIDIA graphics card" in report.summary and not report.problem


def test_processor_only_torch_offers_gpu_support():
    report = diagnose(CARD, {"cuda_build": None, "available": False})
    assert report.device == "cpu" and "no CUDA build installed" in report.problem
    assert report.fix == "install-gpu-support"


def test_old_driver_is_named_with_versions_and_the_fix():
    error = "RuntimeError: The NVIDIA driver on your system is too old (found version 11040)."
    old = SmiFacts(CARD.name, 12 * GIB, 11 * GIB, "470.82.01", "11.4")
    report = diagnose(old, {"cuda_build": "12.8", "available": False, "error": error})
    assert report.device == "cpu" and "driver is too old" in report.problem and "470.82.01" in report.problem
    assert "12.8" in report.problem and "driver" in report.action and not report.fix


def test_driver_older_than_the_cuda_major_is_caught_even_without_torchs_words():
    old = SmiFacts(CARD.name, 12 * GIB, 11 * GIB, "470.82.01", "11.4")
    assert "too old" in diagnose(old, {"cuda_build": "12.8", "available": False, "error": ""}).problem


def test_out_of_memory_says_what_uses_the_card_and_what_to_do():
    report = diagnose(CARD, _cuda(free=2 * GIB), need_bytes=5 * GIB)
    assert report.device == "cuda" and report.problem.startswith("Out of memory")
    assert "other programs use 10.0 GB" in report.problem and "QLoRA" in report.action


def test_a_card_too_old_for_this_torch_falls_back_to_the_processor():
    report = diagnose(CARD, _cuda(capability=(3, 5)))
    assert report.device == "cpu" and "too old for this PyTorch" in report.problem


def test_hidden_card(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES" in diagnose(CARD, {"cuda_build": "12.8", "available": False}).problem


def test_nvidia_smi_output_is_parsed():
    banner = "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |"
    facts = gpu_check.parse_smi("NVIDIA GeForce RTX 3060, 12288, 11000, 535.104.05\n", banner)
    assert facts == SmiFacts("NVIDIA GeForce RTX 3060", 12288 * 2 ** 20, 11000 * 2 ** 20, "535.104.05", "12.2")
    assert gpu_check.parse_smi("No devices were found\n", "") is None


# --- the runtime installer against a fake index --------------------------------------------------

def _wheel(name: str, version: str, requires: list[str], files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {r}\n" for r in requires)
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return buffer.getvalue()


class Served(io.BytesIO):
    def __init__(self, data: bytes, status: int = 200):
        super().__init__(data)
        self.status = status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def fake_index(monkeypatch):
    """torch (this version) needs filelock (already here) and cuda-kit[blas]; cuda-kit's blas extra needs
    nvidia-blas 3.x (3.1 and 4.0 are published); its unused extra must not be installed."""
    version = gpu_runtime.torch_version()
    torch_init = "CUDA = '13.0'\n"
    packages = {
        ("torch", version): _wheel("torch", version, ["filelock", "cuda-kit[blas]==2.0"],
                                   {"torch/__init__.py": torch_init}),
        ("cuda-kit", "2.0"): _wheel("cuda-kit", "2.0", ['nvidia-blas==3.*; extra == "blas"',
                                                        'nvidia-unused; extra == "other"'], {}),
        ("nvidia-blas", "3.1"): _wheel("nvidia-blas", "3.1", [], {"nvidia/blas/lib/libblas.so": "x" * 5000}),
        ("nvidia-blas", "4.0"): _wheel("nvidia-blas", "4.0", [], {"nvidia/blas/lib/libblas.so": "y"}),
    }
    by_url, listing = {}, {}
    for (name, ver), data in packages.items():
        filename = f"{name.replace('-', '_')}-{ver}-py3-none-any.whl"
        by_url[f"https://files.example/{filename}"] = data
        url = f"https://files.example/{filename}"
        listing.setdefault(name, {})[ver] = [{"filename": filename, "url": url,
                                             "size": len(data), "digests": {"sha256": hashlib.sha256(data).hexdigest()}}]

    def urlopen(request, timeout=None, context=None):
        url = request.full_url
        if url.startswith(download.DEFAULT_INDEX):
            name = url[len(download.DEFAULT_INDEX) + 1:].split("/")[0]
            if url.endswith(f"/{name}/json") and name in listing:
                return Served(json.dumps({"releases": listing[name]}).encode())
            raise download.urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        data = by_url[url]
        wanted = request.get_header("Range")
        if wanted:
            start, stop = (int(n) for n in wanted.split("=")[1].split("-"))
            return Served(data[start:stop + 1], 206)
        return Served(data)

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    return packages


def test_the_plan_adds_only_the_cuda_parts_and_knows_their_sizes(fake_index):
    plan = gpu_runtime.plan()
    names = [f.filename.split("-")[0] for f in plan.files]
    assert names == ["torch", "cuda_kit", "nvidia_blas"]  # no filelock (already here), no unused extra
    assert plan.files[2].filename.startswith("nvidia_blas-3.1")  # newest release the pin allows
    assert plan.download_bytes == sum(len(d) for k, d in fake_index.items() if k != ("nvidia-blas", "4.0"))
    assert plan.disk_bytes > 5000 and "to download" in plan.describe()


def test_install_unpacks_and_workers_import_the_runtime_torch(fake_index, tunesmith_home):
    folder = gpu_runtime.install(gpu_runtime.plan())
    assert (folder / "nvidia/blas/lib/libblas.so").stat().st_size == 5000
    assert gpu_runtime.installed()["files"][0].startswith("torch-")
    assert not [p for p in folder.parent.iterdir() if p.name != folder.name], "wheels or staging left behind"
    # A fresh process (as a spawned worker is) gets the runtime's torch just by importing engine.
    code = "import engine, torch; print(torch.__file__, torch.CUDA)"
    env = {**os.environ, "TUNESMITH_HOME": str(tunesmith_home)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == [str(folder / "torch" / "__init__.py"), "13.0"], out.stderr
    gpu_runtime.remove()
    assert gpu_runtime.installed() is None


def test_a_failed_install_leaves_nothing_half_done(fake_index, monkeypatch):
    plan = gpu_runtime.plan()
    plan.files[2] = dataclasses.replace(plan.files[2], sha256="0" * 64)
    with pytest.raises(download.DownloadError) as caught:
        gpu_runtime.install(plan)
    assert caught.value.kind == "hash"
    assert gpu_runtime.installed() is None and not list(gpu_runtime.runtime_dir().parent.iterdir())


def test_too_little_disk_for_gpu_support_is_said_before_downloading(fake_index, monkeypatch):
    plan = gpu_runtime.plan()
    plan.disk_bytes = 5 * 10 ** 9
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: type("U", (), {"free": 3 * 10 ** 9})())
    with pytest.raises(download.DownloadError, match="Not enough disk space for GPU support") as caught:
        gpu_runtime.install(plan)
    assert caught.value.kind == "disk"


def test_torch_version_drops_the_build_tag():
    assert "+" not in gpu_runtime.torch_version()
    assert gpu_runtime.torch_version() == importlib.metadata.version("torch").split("+")[0]
