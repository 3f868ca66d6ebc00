"""The engine helper: one long-lived child process that does the window's small model work.

The window's process never loads torch or transformers: importing them takes seconds and hundreds
of megabytes, and a crash in their native code would take the window down with it. Yet the Dataset
view needs the model's tokenizer (its preview and token counts), the hardware panel a weightless
model (its memory estimate) and the model picker the engine's model preparation. That work runs
here: in one spawned child (gui.helper_child running engine.window_jobs), started on first need and
kept, so the imports and the loaded tokenizers are paid for once and shared by every view.

`call()` blocks its caller, so it is made from a pool thread (gui.widgets.background.LatestJob),
never the Qt thread. Each call names a lane: the child runs one lane's jobs in order on one thread
and different lanes side by side (see gui.helper_child).

A helper that dies (killed, out of memory, a crash in native code) is replaced on the next request,
and the request it was running is tried once more on the fresh one; a request that ends two
helpers is reported with the log's tail instead of being tried forever.
"""
from __future__ import annotations

import itertools
import os
import threading
from typing import Any, Callable, Optional

from engine.errors import TunesmithError
from gui.child_entry import read_log_tail
from gui.helper_child import HOME_VARIABLE, serve
from gui.process_host import SPAWN, new_log_path

Progress = Callable[[str, float], None]


class HelperError(TunesmithError):
    """A job failed in the helper; the message is already the one to show."""


class _HelperDied(Exception):
    """The helper process ended while a request was waiting for it."""


class _Waiter:
    """One request waiting for its answer."""

    def __init__(self, progress: Optional[Progress]):
        self.progress = progress
        self.answer: Optional[dict] = None
        self.done = threading.Event()


class _Child:
    """One running helper process, its pipe and the requests it has not answered yet."""

    def __init__(self):
        self.log_path = new_log_path("helper")
        self.connection, child_end = SPAWN.Pipe()
        # A daemon: the helper never outlives the window, even if the window is killed mid-request.
        self.process = SPAWN.Process(target=serve, args=(child_end, str(self.log_path)), name="tunesmith-helper",
                                     daemon=True)
        self.process.start()
        child_end.close()  # only the child holds its end: then its death reads as end-of-file here
        self.waiting: dict[int, _Waiter] = {}
        self.lock = threading.Lock()  # guards `waiting` and sending (a Connection is not thread-safe)
        self.alive = True
        self.stopped = False  # shut down on purpose: its unanswered requests fail instead of being retried
        threading.Thread(target=self._read, name="helper-reader", daemon=True).start()

    def send(self, request_id: int, waiter: _Waiter, request: dict) -> None:
        with self.lock:
            if not self.alive:
                raise _HelperDied()
            self.waiting[request_id] = waiter
            try:
                self.connection.send(request)
            except (BrokenPipeError, EOFError, OSError):
                self.waiting.pop(request_id, None)
                raise _HelperDied() from None

    def _read(self) -> None:
        """Hand each answer to its waiter; when the pipe closes, release every waiter still there."""
        while True:
            try:
                message = self.connection.recv()
            except (EOFError, OSError):
                break
            with self.lock:
                waiter = self.waiting.get(message["id"])
                if waiter is not None and "progress" not in message:
                    del self.waiting[message["id"]]
            if waiter is None:
                continue
            if "progress" in message:
                if waiter.progress is not None:
                    waiter.progress(*message["progress"])
                continue
            waiter.answer = message
            waiter.done.set()
        with self.lock:
            self.alive = False
            self.connection.close()
            orphans, self.waiting = list(self.waiting.values()), {}
        for waiter in orphans:
            waiter.done.set()  # no answer: the caller sees that the helper died

    def stop(self, grace_s: float = 2.0) -> None:
        """Ask the child to end (None instead of a request), and kill it if it does not in time.

        The reader thread closes the pipe once the child is gone: closing it here, under a thread
        blocked reading it, need not wake that thread up.
        """
        with self.lock:
            self.stopped = True
            if self.alive:
                try:
                    self.connection.send(None)
                except (BrokenPipeError, EOFError, OSError):
                    pass  # already gone
        self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(grace_s)


class EngineHelper:
    """Starts the helper on first need, restarts it when it has died, and routes requests to it."""

    def __init__(self):
        self._lock = threading.Lock()  # guards starting and stopping the child
        self._child: Optional[_Child] = None
        self._ids = itertools.count(1)

    def call(self, job: str, *args: Any, lane: str = "default", progress: Optional[Progress] = None,
             **kwargs: Any) -> Any:
        """Run engine.window_jobs.<job>(*args, **kwargs) in the helper and return its plain-data result.

        Raises HelperError with the message to show when the job fails or the helper keeps dying.
        """
        for attempt in (1, 2):
            child = self._running_child()
            waiter = _Waiter(progress)
            request_id = next(self._ids)
            try:
                child.send(request_id, waiter, {"id": request_id, "job": job, "args": list(args), "kwargs": kwargs,
                                                "lane": lane, "home": os.environ.get(HOME_VARIABLE)})
            except _HelperDied:
                continue
            waiter.done.wait()
            if waiter.answer is None and child.stopped:
                raise HelperError("The helper process was stopped (the window is closing).")
            if waiter.answer is None:
                continue  # the helper died under this request: once more on a fresh one
            if "error" in waiter.answer:
                raise HelperError(waiter.answer["error"])
            return waiter.answer["result"]
        tail = read_log_tail(child.log_path, lines=12)
        raise HelperError("The helper process that prepares previews and estimates stopped unexpectedly, twice. "
                          "Its log ends with:\n" + (tail or "(nothing)"))

    def _running_child(self) -> _Child:
        with self._lock:
            child = self._child
            if child is None or not child.alive:
                if child is not None:
                    child.stop(grace_s=0.5)
                child = self._child = _Child()
            return child

    @property
    def pid(self) -> Optional[int]:
        """The running helper's process id (None before its first request and after shutdown)."""
        child = self._child
        return child.process.pid if child is not None and child.alive else None

    def shutdown(self) -> None:
        """End the helper (the window closes); a later request starts a new one."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop()


_helper = EngineHelper()


def helper() -> EngineHelper:
    """The window's one engine helper."""
    return _helper
