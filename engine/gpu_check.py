"""Which device training will use, and when an NVIDIA card is present but cannot be used, why and what to do.

Two sources of facts, both cheap to fake in tests:
- `smi_facts()`: what `nvidia-smi` says (the card, its memory, the driver and the newest CUDA it runs);
- `torch_facts()`: what PyTorch says (its CUDA build, whether CUDA starts, the driver's own complaint).
  It imports torch, so the window runs it in a child process (`probe_in_child`).
`diagnose(smi, torch)` turns them into a `DeviceReport` in plain words; the Method view shows it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional

GIB = 1024 ** 3
DRIVER_HELP = ("Install the newest NVIDIA driver for your card (the system's driver manager, or nvidia.com), "
               "restart the computer, then open Tunesmith again.")


@dataclass
class SmiFacts:
    name: str
    memory_total: int  # bytes
    memory_free: int
    driver: str  # e.g. "535.104.05"
    cuda: str  # the newest CUDA this driver runs, e.g. "12.2" ("" when unknown)


def smi_facts(timeout: float = 10) -> Optional[SmiFacts]:
    """The first NVIDIA card as nvidia-smi sees it, or None without one (or without a working driver)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        query = subprocess.run([smi, "--query-gpu=name,memory.total,memory.free,driver_version",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=timeout)
        banner = subprocess.run([smi], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_smi(query.stdout, banner)


def parse_smi(query: str, banner: str) -> Optional[SmiFacts]:
    lines = [line for line in query.strip().splitlines() if line.count(",") >= 3]
    if not lines:
        return None
    name, total, free, driver = (part.strip() for part in lines[0].rsplit(",", 3))
    try:
        total_b, free_b = int(float(total)) * 1024 ** 2, int(float(free)) * 1024 ** 2
    except ValueError:
        return None
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", banner or "")
    return SmiFacts(name, total_b, free_b, driver, cuda.group(1) if cuda else "")


def torch_facts() -> dict:
    """What this process's torch can do with CUDA; imports torch (run it in a child from the window)."""
    import torch

    facts = {"torch": torch.__version__, "path": os.path.dirname(torch.__file__), "cuda_build": torch.version.cuda,
             "available": False, "error": "",
             "devices": [], "arch_list": []}
    if torch.version.cuda is None:
        return facts
    try:
        torch.cuda.init()  # raises with the driver's own words when CUDA cannot start
        facts["arch_list"] = list(torch.cuda.get_arch_list())
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            free, total = torch.cuda.mem_get_info(index)
            facts["devices"].append({"name": torch.cuda.get_device_name(index), "capability": [major, minor],
                                     "free": free, "total": total})
        facts["available"] = bool(facts["devices"])
    except Exception as exc:  # noqa: BLE001 - CUDA fails in many ways; the message is what we need
        facts["error"] = f"{type(exc).__name__}: {exc}"
    return facts


def probe_in_child(timeout: float = 120) -> dict:
    """torch_facts() in a spawned child, so the window's process never imports torch (works frozen too)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(torch_facts).get(timeout)


def unsupported_capability(capability: list, arch_list: list) -> bool:
    """True when this torch has no kernels for a card of `capability` (sm_XY or PTX it can compile)."""
    if not arch_list:
        return False
    number = capability[0] * 10 + capability[1]
    built = [int(a.split("_")[1]) for a in arch_list if a.startswith("sm_") and a.split("_")[1].isdigit()]
    ptx = [int(a.split("_")[1]) for a in arch_list if a.startswith("compute_") and a.split("_")[1].isdigit()]
    same_major = [b for b in built if b // 10 == capability[0] and b <= number]
    return not same_major and not any(p <= number for p in ptx)


@dataclass
class DeviceReport:
    device: str  # "cuda" or "cpu": where training will run
    summary: str  # "Training will use ..."
    problem: str = ""  # why a card that is present cannot be used (or may not fit), in plain words
    action: str = ""  # what to do about it
    fix: str = ""  # "install-gpu-support" when Tunesmith can fix it itself
    notes: list = field(default_factory=list)


def _version_tuple(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:2])


def diagnose(smi: Optional[SmiFacts], torch: Optional[dict], need_bytes: Optional[int] = None,
             cpu: str = "the processor") -> DeviceReport:
    """Where training will run, and if an NVIDIA card is present but unusable, why and what to do."""
    on_cpu = f"Training will use {cpu}."
    torch = torch or {}
    devices = torch.get("devices") or []
    if torch.get("available") and devices:
        card = devices[0]
        capability, arch = card.get("capability") or [0, 0], torch.get("arch_list") or []
        if unsupported_capability(capability, arch):
            return DeviceReport("cpu", on_cpu, f"Your {card['name']} is too old for this PyTorch (compute capability "
                                f"{capability[0]}.{capability[1]}; it has kernels for {', '.join(arch)}).",
                                "Training runs on the processor instead; small models train fine there.")
        report = DeviceReport("cuda", f"Training will use {card['name']} ({card['total'] / GIB:.0f} GB, "
                                      f"CUDA {torch.get('cuda_build')}).")
        if need_bytes and need_bytes > card["free"] * 0.9:
            in_use = card["total"] - card["free"]
            report.problem = (f"Out of memory: this training needs about {need_bytes / GIB:.1f} GB; the card has "
                              f"{card['free'] / GIB:.1f} GB free" + (f" (other programs use {in_use / GIB:.1f} GB)."
                                                                      if in_use > 0.5 * GIB else "."))
            report.action = ("Close those programs, or choose QLoRA, a smaller batch or a shorter maximum length."
                             if in_use > 0.5 * GIB else "Choose QLoRA, a smaller batch or a shorter maximum length.")
        return report
    if smi is None:
        return DeviceReport("cpu", on_cpu + " No NVIDIA graphics card was found; small models train fine on the "
                                            "processor, large ones are slow.")
    card = smi.name
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return DeviceReport("cpu", on_cpu, f"Your {card} is hidden from programs (CUDA_VISIBLE_DEVICES is "
                                           f"'{hidden}').", "Unset CUDA_VISIBLE_DEVICES, then open Tunesmith again.")
    if not torch:
        return DeviceReport("cpu", f"Checking whether {card} can be used…")
    if torch.get("cuda_build") is None:
        from engine import gpu_runtime

        problem = f"Your {card} is not used: this Tunesmith has the processor-only PyTorch (no CUDA build installed)."
        if gpu_runtime.supported():
            return DeviceReport("cpu", on_cpu, problem, "Install GPU support: Tunesmith downloads the CUDA build "
                                                        "of PyTorch once.", fix="install-gpu-support")
        return DeviceReport("cpu", on_cpu, problem, "Install a CUDA build of PyTorch from pytorch.org into a "
                                                    "development install of Tunesmith.")
    error = torch.get("error", "")
    needs, has = _version_tuple(torch["cuda_build"]), _version_tuple(smi.cuda)
    if "too old" in error.lower() or (has and needs and has[0] < needs[0]):
        return DeviceReport("cpu", on_cpu, f"Your {card}'s driver is too old: version {smi.driver} runs CUDA up to "
                                           f"{smi.cuda or 'an older version'}, and this PyTorch needs CUDA "
                                           f"{torch['cuda_build']}.", DRIVER_HELP)
    if "no nvidia driver" in error.lower() or "driver" in error.lower():
        return DeviceReport("cpu", on_cpu, f"Your {card} is present but CUDA could not talk to its driver "
                                           f"({_first_line(error)}).", DRIVER_HELP)
    return DeviceReport("cpu", on_cpu, f"Your {card} could not be started for training "
                                       f"({_first_line(error) or 'no CUDA device answered'}).",
                        "Restart the computer; if that does not help, " + DRIVER_HELP[0].lower() + DRIVER_HELP[1:])


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""
