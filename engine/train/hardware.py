"""Where training runs and in which number format, decided once from the hardware and the config."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Overrides training.precision 'auto' for this process (a value set in the config still wins), so
# that one machine can run everything the way another would: the test suite in fp32 on a CPU that
# has native bf16, or in bf16 on one that has not.
PRECISION_ENV = "TUNESMITH_PRECISION"


@dataclass(frozen=True)
class Hardware:
    device: torch.device
    precision: str  # bf16 | fp16 | fp32: the autocast format of the forward pass
    notes: tuple[str, ...] = ()  # plain-words explanations of choices the user did not make

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return None if self.precision == "fp32" else DTYPES[self.precision]

    def describe(self) -> str:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            return f"{name} (CUDA, {self.precision})"
        return f"CPU, {torch.get_num_threads()} threads ({self.precision})"


def cpu_has_fast_bf16() -> bool:
    """True where the CPU does bf16 arithmetic natively (AVX512-BF16 / AMX).

    Elsewhere bf16 is emulated and slower than fp32 (measured on an AVX2-only EPYC: a 2048x576x1536
    linear forward+backward took 0.45 s in fp32 and 4.1 s under bf16 autocast).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def pick_device() -> torch.device:
    """CUDA when present and this torch has kernels for it (the local rank's GPU under torchrun), else the CPU.

    The Method view says the same before training (engine.gpu_check.diagnose).
    """
    from engine.gpu_check import unsupported_capability

    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", 0))
        if not unsupported_capability(list(torch.cuda.get_device_capability(index)), torch.cuda.get_arch_list()):
            return torch.device("cuda", index)
    return torch.device("cpu")


def auto_precision(device: torch.device) -> str:
    """What 'auto' means here: $TUNESMITH_PRECISION when set, else bf16 where the hardware has it, else fp32."""
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if forced and forced != "auto":
        if forced not in DTYPES:
            from engine.config import ConfigError

            raise ConfigError(f"{PRECISION_ENV}={forced!r}: choose one of auto, {', '.join(DTYPES)} "
                              "(or unset it).")
        return forced
    return "bf16" if bf16_available(device) else "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """training.precision ('auto' | 'bf16' | 'fp16' | 'fp32') as the format used on `device`."""
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "fp16" and device.type == "cpu":
        return "fp32"
    return precision


def choose(precision: str, device: Optional[torch.device] = None) -> Hardware:
    """Resolve training.precision ('auto' | 'bf16' | 'fp16' | 'fp32') for this machine."""
    device = device or pick_device()
    notes = []
    resolved = resolve_precision(precision, device)
    if precision == "auto" and os.environ.get(PRECISION_ENV, "").strip().lower() not in ("", "auto"):
        notes.append(f"Number format {resolved}, set by {PRECISION_ENV}.")
    elif precision == "auto":
        if device.type == "cpu" and resolved == "fp32":
            notes.append("This CPU has no native bf16 arithmetic, so training uses fp32, which is faster here.")
    elif precision == "fp16" and device.type == "cpu":
        notes.append("fp16 is not used on the CPU (it is slow and unstable there); training uses fp32.")
    if resolved == "bf16" and not bf16_available(device):
        notes.append("bf16 was asked for but this hardware has no native bf16: expect slow training.")
    return Hardware(device, resolved, tuple(notes))


def set_threads(threads: int) -> int:
    """Use one thread per physical core (hyper-threads slow dense maths down) unless told otherwise."""
    if threads <= 0:
        import psutil

        threads = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads
