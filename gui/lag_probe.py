"""Measure how responsive the Qt event loop is: a 5 ms timer that notes how late each tick fires.

If anything blocks the GUI thread (drawing every event, reading a big file, a slow signal handler),
ticks arrive late. lag = actual interval - expected interval; p99 under 16 ms means a frame is
almost never missed, and max under 100 ms means the window never feels stuck.

    probe = LagProbe(); probe.start()
    ...  # use the window
    probe.stop(); print(probe.report())   # {'ticks': 812, 'p50_ms': 0.4, 'p99_ms': 6.1, 'max_ms': 18.0, ...}

On a machine shared with other busy processes, lag also counts the time the scheduler gave to
them. `busy_percent` (CPU time of the GUI thread / wall time) does not: it says how much of the
thread the window itself used, which is what a change to the window's code can make worse.
"""
from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QObject, Qt, QTimer


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


class LagProbe(QObject):
    """Collects event-loop lag samples from a precise 5 ms timer while it runs."""

    def __init__(self, interval_ms: int = 5, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.lags_ms: list[float] = []
        self._last: Optional[float] = None
        self._started_wall = self._started_cpu = 0.0
        self._wall_s = self._cpu_s = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)  # coarse timers may fire 5 % late by design
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Start sampling (call from the GUI thread)."""
        self.lags_ms.clear()
        self._last = self._started_wall = time.perf_counter()
        self._started_cpu = time.thread_time()
        self._timer.start()

    def stop(self) -> None:
        """Stop sampling (from the GUI thread, so the CPU time is that thread's)."""
        self._timer.stop()
        self._wall_s = time.perf_counter() - self._started_wall
        self._cpu_s = time.thread_time() - self._started_cpu

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.lags_ms.append(max(0.0, (now - self._last) * 1000.0 - self.interval_ms))
        self._last = now

    def report(self) -> dict[str, float]:
        """Ticks, the p50 / p99 / max lag in milliseconds, and how busy the GUI thread was (percent)."""
        return {"ticks": len(self.lags_ms),
                "p50_ms": round(percentile(self.lags_ms, 0.50), 2),
                "p99_ms": round(percentile(self.lags_ms, 0.99), 2),
                "max_ms": round(max(self.lags_ms, default=0.0), 2),
                "seconds": round(self._wall_s, 2),
                "busy_percent": round(100.0 * self._cpu_s / self._wall_s, 1) if self._wall_s else 0.0}
