"""Run short jobs (read a dataset, ask the engine helper process for a preview or an estimate) off the Qt thread.

`LatestJob` keeps only the newest request: when the user clicks through examples quickly, older
renders still finish on the pool but their results are dropped, so the view always shows what was
asked for last and the window never freezes.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import plain_message

Progress = Callable[[str, float], None]


class _Relay(QObject):
    """Carries a job's outcome from the pool thread to the Qt thread (queued signals)."""

    done = Signal(int, object)
    failed = Signal(int, str)
    progress = Signal(int, str, float)


class _Runnable(QRunnable):
    def __init__(self, ticket: int, relay: _Relay, fn: Callable[..., Any], with_progress: bool):
        super().__init__()
        self._ticket, self._relay, self._fn, self._with_progress = ticket, relay, fn, with_progress

    def run(self) -> None:  # runs on a pool thread
        try:
            if self._with_progress:
                result = self._fn(lambda message, fraction: self._emit("progress", message, fraction))
            else:
                result = self._fn()
        except Exception as exc:  # noqa: BLE001 - every failure is shown to the user, never raised in Qt
            self._emit("failed", plain_message(exc))
        else:
            self._emit("done", result)

    def _emit(self, signal: str, *args) -> None:
        try:
            getattr(self._relay, signal).emit(self._ticket, *args)
        except RuntimeError:
            pass  # the view that asked was closed meanwhile: nobody is left to tell


class LatestJob(QObject):
    """Submit callables; only the newest one's result (or error) is delivered.

    Signals: finished(object) with the function's return value, failed(str) with a plain-words
    message, progress(str, float) for jobs submitted with `with_progress=True` (the function then
    gets a `progress(message, fraction)` callback as its only argument), and runningChanged(bool).
    """

    finished = Signal(object)
    failed = Signal(str)
    progress = Signal(str, float)
    runningChanged = Signal(bool)

    _tickets = itertools.count(1)

    def __init__(self, parent: Optional[QObject] = None, pool: Optional[QThreadPool] = None):
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._relay = _Relay()
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._relay.progress.connect(self._on_progress)
        self._latest = 0
        self._pending = 0

    @property
    def running(self) -> bool:
        """True while any submitted job has not yet come back."""
        return self._pending > 0

    def submit(self, fn: Callable[..., Any], *, with_progress: bool = False, ticket: int = 0) -> int:
        """Start `fn` on the pool; returns its ticket. Earlier, unfinished jobs are superseded."""
        ticket = ticket or next(self._tickets)
        self._latest = ticket
        self._pending += 1
        if self._pending == 1:
            self.runningChanged.emit(True)
        self._pool.start(_Runnable(ticket, self._relay, fn, with_progress))
        return ticket

    def submit_cancellable(self, fn: Callable[[Callable[[], bool]], Any]) -> int:
        """Like submit, for long jobs: `fn(still_wanted)` should stop early once still_wanted() is False
        (a newer request came, or cancel() was called); whatever it returns then is dropped."""
        ticket = next(self._tickets)
        return self.submit(lambda: fn(lambda: self._latest == ticket), ticket=ticket)

    def cancel(self) -> None:
        """Drop the results of everything submitted so far (the jobs still finish in the background)."""
        self._latest = -1

    def _finish_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.runningChanged.emit(False)

    def _on_done(self, ticket: int, result: object) -> None:
        self._finish_one()
        if ticket == self._latest:
            self.finished.emit(result)

    def _on_failed(self, ticket: int, message: str) -> None:
        self._finish_one()
        if ticket == self._latest:
            self.failed.emit(message)

    def _on_progress(self, ticket: int, message: str, fraction: float) -> None:
        if ticket == self._latest:
            self.progress.emit(message, fraction)
