"""GPU support for a Tunesmith whose PyTorch was built for the processor only (the desktop bundle).

The CUDA build of the *same* PyTorch version, and the NVIDIA libraries it names, are installed once
into the data folder (`runtime/torch-<version>-cuda/`) from the package index, sha256 checked, without
pip. `activate()` (called when `engine` is imported) puts that folder first on sys.path in every
process that has not imported torch yet, so training, chat and evaluation workers load the CUDA build
while the window and the bundle stay as they are. Delete the folder to go back to the processor.

Which files: the CUDA wheel's dependencies minus those of the installed processor-only torch (those
are already here), followed through the NVIDIA packages' own dependencies. Sizes come from the index
and from the wheels' tables of contents (HTTP range requests), so the download and the disk it takes
are known before anything is downloaded.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from engine import paths

if TYPE_CHECKING:
    from engine.download import IndexFile

MARKER = "tunesmith-runtime.json"
DISABLE_ENV = "TUNESMITH_NO_GPU_RUNTIME"  # set to use the bundled torch even where the runtime is installed
TYPICAL_MBIT = (50, 250)  # connection speeds the time estimate is given for

Progress = Callable[[str, float], None]


def supported() -> bool:
    """PyPI carries CUDA builds of torch for Linux only (Windows' are on PyTorch's own index, which has
    no JSON API; macOS has no CUDA)."""
    return sys.platform.startswith("linux")


def torch_version() -> str:
    """The installed torch's release without its local build tag: '2.13.0+cpu' -> '2.13.0'."""
    import importlib.metadata  # here, not at the top: `import engine` must stay fast

    return importlib.metadata.version("torch").split("+")[0]


def runtime_dir(version: str = "", create: bool = True) -> Path:
    return paths.data_dir(create) / "runtime" / f"torch-{version or torch_version()}-cuda"


def installed(version: str = "") -> Optional[dict]:
    """The runtime's record (files, sizes) when it is completely installed, else None."""
    try:
        return json.loads((runtime_dir(version) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, ImportError):  # ImportError: PackageNotFoundError, no torch at all
        return None


def activate() -> Optional[Path]:
    """Put the installed runtime first on sys.path, unless torch is already imported; returns its folder."""
    if os.environ.get(DISABLE_ENV) or "torch" in sys.modules:
        return None
    if not (paths.data_dir(create=False) / "runtime").is_dir():
        return None  # the usual case, decided without reading any package metadata (imports stay fast)
    try:
        folder = runtime_dir(create=False)  # importing engine must not create the data folder
    except (ImportError, OSError):  # no torch installed
        return None
    if not (folder / MARKER).is_file():
        return None
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return folder


@dataclass
class Plan:
    files: list[IndexFile] = field(default_factory=list)
    disk_bytes: int = 0  # unpacked
    versions: dict = field(default_factory=dict)  # package name -> the Version chosen

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        """'2.6 GB to download (about 7 min at 50 Mbit/s, 1.4 min at 250 Mbit/s), 5.1 GB on disk'."""
        from engine import download

        times = ", ".join(_duration(self.download_bytes * 8 / (mbit * 1e6)) + f" at {mbit} Mbit/s"
                          for mbit in TYPICAL_MBIT)
        return (f"{download.human_bytes(self.download_bytes)} to download (about {times}), "
                f"{download.human_bytes(self.disk_bytes)} on disk")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def plan(progress: Optional[Progress] = None) -> Plan:
    """The files GPU support needs, with their sizes, read from the index (no large download).

    Every requirement on a package is honoured at once: when a later one rules out the version chosen
    for an earlier one, the plan is made again with both (pip's resolver does the same, at length).
    """
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    from engine.download import DownloadError

    constraints: dict[str, SpecifierSet] = {}
    for _attempt in range(4):
        result, wanted = _plan_once(Requirement(f"torch=={torch_version()}"), constraints, progress)
        broken = {name: spec for name, spec in wanted.items()
                  if not spec.contains(result.versions[name], prereleases=True)}
        if not broken:
            return result
        for name, spec in broken.items():
            constraints[name] = constraints.get(name, SpecifierSet()) & spec
    raise DownloadError("GPU support could not be put together: the package index offers no set of NVIDIA "
                        f"libraries that fits this torch ({', '.join(sorted(broken))}).", "missing")


def _plan_once(root, constraints: dict, progress: Optional[Progress]) -> tuple[Plan, dict]:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    from engine import wheels

    import importlib.metadata

    cpu_needs = {canonicalize_name(Requirement(r).name) for r in importlib.metadata.requires("torch") or []}
    result = Plan()
    wanted: dict[str, SpecifierSet] = {}  # every requirement met on the way, merged per package
    queue: list[Requirement] = [root]
    while queue:
        requirement = queue.pop(0)
        name = canonicalize_name(requirement.name)
        wanted[name] = wanted.get(name, SpecifierSet()) & requirement.specifier
        if name in result.versions:
            continue
        # Everything asked of this package so far, in one go.
        extras, spec = set(requirement.extras), requirement.specifier & constraints.get(name, SpecifierSet())
        for other in queue:
            if canonicalize_name(other.name) == name:
                extras |= other.extras
                spec &= other.specifier
        if progress:
            progress(f"Looking up {name}...", min(0.9, len(result.files) / 25))
        file, version = _choose(name, spec)
        archive = wheels.remote_zip(file)
        result.files.append(file)
        result.versions[name] = version
        result.disk_bytes += wheels.unpacked_size(archive)
        for dependency in wheels.requirements(archive, extras):
            # What the processor-only torch needs is here already; only the CUDA parts are new.
            if canonicalize_name(dependency.name) not in cpu_needs:
                queue.append(dependency)
    return result, wanted


def _choose(name: str, spec) -> tuple[IndexFile, object]:
    """This platform's wheel of the newest release of `name` that `spec` allows, and its version."""
    from packaging.version import InvalidVersion, Version

    from engine import download, wheels
    from engine.download import DownloadError

    releases = download.project_releases(name, f"GPU support ({name})")
    versions = []
    for text in releases:
        try:
            versions.append((Version(text), text))
        except InvalidVersion:
            continue
    for version, text in sorted(versions, reverse=True):
        if spec.contains(version, prereleases=bool(spec)):
            file = wheels.pick(releases[text])
            if file is not None:
                return file, version
    raise DownloadError(f"GPU support needs {name}{spec}, but the package index has no version of it for this "
                        "computer; GPU training is not available here.", "missing")


def install(the_plan: Plan, progress: Optional[Progress] = None,
            cancelled: Callable[[], bool] = lambda: False) -> Path:
    """Download, check and unpack every file of `the_plan`; the runtime counts only once complete."""
    from engine import download, wheels

    final = runtime_dir()
    parent = final.parent
    largest = max((f.size for f in the_plan.files), default=0)
    # Each wheel is deleted once unpacked: room for the unpacked runtime plus the largest wheel.
    download.check_free_space(parent, the_plan.disk_bytes + largest, "GPU support")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    total, done_before = the_plan.download_bytes, 0
    rate = download.Rate()
    try:
        for file in the_plan.files:
            def on_bytes(done: int, _size: int, before=done_before) -> None:
                if progress:
                    progress(f"Downloading GPU support ({file.project}): {rate.text(before + done, total)}",
                             (before + done) / total)

            wheel = download.download(file, parent, on_bytes, cancelled, what=f"GPU support ({file.project})")
            try:
                wheels.unpack(wheel, staging)
            except OSError as exc:
                raise download.disk_problem(exc, "GPU support", parent) or exc
            finally:
                wheel.unlink(missing_ok=True)
            done_before += file.size
        record = {"torch": torch_version(), "files": [f.filename for f in the_plan.files],
                  "download_bytes": total, "disk_bytes": the_plan.disk_bytes}
        (staging / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
        staging.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if progress:
        progress("GPU support installed.", 1.0)
    return final


def remove() -> None:
    """Go back to the processor-only torch: delete the runtime folder."""
    shutil.rmtree(runtime_dir(), ignore_errors=True)
