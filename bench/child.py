"""What every side's child process shares: peak memory, step clocks, throughput, result files.

Each side runs in a fresh process (so resident memory and warm caches are fair); the parent
hands it a job as JSON on the command line and reads one JSON result file back.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

SPAWN_ENV = "TUNESMITH_BENCH_SPAWNED_AT"  # wall-clock time the parent started this process


def spawned_at() -> float:
    """When the parent launched this process (falls back to now when run by hand)."""
    try:
        return float(os.environ[SPAWN_ENV])
    except (KeyError, ValueError):
        return time.time()


def peak_rss_mb() -> float:
    """Highest resident memory of this process so far, in MiB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own memory.
    (getrusage's ru_maxrss would be wrong here: it keeps the high-water mark of the parent's
    image from before exec, so every child would report at least the race's own peak.)
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    per_mib = 2**20 if sys.platform == "darwin" else 1024  # macOS reports bytes, others KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / per_mib


def gpu_peak_mb() -> Optional[float]:
    """Most GPU memory the caching allocator reserved, in MiB; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


class StepClock:
    """Wall-clock time at which each optimizer step was first reported, and the losses seen."""

    def __init__(self) -> None:
        self.began: Optional[float] = None  # when the first step started (the model is loaded by then)
        self.step_times: dict[int, float] = {}
        self.losses: list[tuple[int, float, float]] = []  # (step, loss, time)

    def begin(self, when: Optional[float] = None) -> None:
        if self.began is None:
            self.began = time.time() if when is None else when

    def step(self, step: int, when: Optional[float] = None) -> None:
        self.step_times.setdefault(int(step), time.time() if when is None else when)

    def loss(self, step: int, loss: float, when: Optional[float] = None) -> None:
        when = time.time() if when is None else when
        self.losses.append((int(step), float(loss), when))
        self.step(step, when)

    def first_loss_time(self) -> Optional[float]:
        return min((t for _, _, t in self.losses), default=None)

    def median_step_s(self) -> Optional[float]:
        """Median time per step between consecutive reported steps (from `begin` to the first one, too)."""
        times = dict(self.step_times)
        if self.began is not None:
            times.setdefault(0, self.began)
        steps = sorted(times)
        gaps = [(times[b] - times[a]) / (b - a) for a, b in zip(steps, steps[1:])]
        if not gaps:
            return None
        gaps.sort()
        return gaps[len(gaps) // 2]

    def last_step_s(self) -> Optional[float]:
        """Duration of the latest step (from the previous report, or from `begin` for step 1)."""
        times = dict(self.step_times)
        if self.began is not None:
            times.setdefault(0, self.began)
        steps = sorted(times)
        if len(steps) < 2:
            return None
        return (times[steps[-1]] - times[steps[-2]]) / (steps[-1] - steps[-2])

    def tail_loss(self, fraction: float = 0.25) -> Optional[float]:
        """Mean training loss over the last `fraction` of the reported steps."""
        if not self.losses:
            return None
        ordered = sorted(self.losses)
        keep = ordered[-max(1, int(round(len(ordered) * fraction))):]
        return sum(loss for _, loss, _ in keep) / len(keep)


def throughput(step_times: dict[int, float], total_steps: int, tokens_total: int, warmup_steps: int) -> dict:
    """Trained tokens per second with the first `warmup_steps` steps left out.

    tokens/s = tokens_total * (last - first) / total_steps / (t[last] - t[first]), where `first`
    is the first reported step at or after the warm-up. Both sides process the same rows in one
    epoch, so the share of tokens per step is the same estimate on both sides.
    """
    steps = sorted(s for s in step_times if s >= max(1, warmup_steps))
    if len(steps) < 2:
        return {"tokens_per_s": None, "window_steps": 0, "window_s": None,
                "note": f"need at least 2 reported steps after {warmup_steps} warm-up step(s); got {len(steps)}"}
    first, last = steps[0], steps[-1]
    seconds = step_times[last] - step_times[first]
    tokens = tokens_total * (last - first) / max(1, total_steps)
    return {"tokens_per_s": tokens / seconds if seconds > 0 else None, "window_steps": last - first,
            "window_s": seconds}


def run_child(job: Callable[[dict], dict]) -> None:
    """Entry point of a side's process: `python -m bench.X JOB.json RESULT.json`.

    Any failure is written to the result file as {"error": ...} so the parent can print one
    plain line for that row instead of stopping the whole race.
    """
    job_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(job_path.read_text(encoding="utf-8"))
    try:
        result = job(spec)
    except Exception as exc:  # the race goes on; the row shows what went wrong
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result_path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
