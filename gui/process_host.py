"""ProcessHost: a QThread that owns one worker process and turns its events into Qt signals.

GPU and model work never happens in the window's process. Each job (training, chat, evaluation)
runs in a spawned child; this thread starts it, forwards every engine event it sends, forwards
what it prints (so the window's log pane shows it), and says how it ended. A crash, an
out-of-memory kill or a forced stop becomes a `Failed` event with the log tail; the window lives on.

Stopping escalates: `request_stop()` sets the stop event the engine polls (it finishes the step,
writes a complete checkpoint and reports `Finished(reason="stopped")`); if the child has not
exited after `stop_grace_s` it is terminated, and `terminate_grace_s` later it is killed.

`spawn` (not fork) starts the child: forking a process that runs Qt threads, or that touched
CUDA, is unsafe, and spawn is what a frozen bundle supports (with multiprocessing.freeze_support()).
"""
from __future__ import annotations

import codecs
import dataclasses
import itertools
import multiprocessing
import signal
import time
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QThread, Signal

from engine import paths
from engine.events import Failed, Finished
from gui.child_entry import child_main, read_log_tail

SPAWN = multiprocessing.get_context("spawn")
KEEP_LOG_FILES = 30
_log_counter = itertools.count(1)

OUT_OF_MEMORY_HINT = ("This usually means the computer ran out of memory. Try a smaller batch size or "
                      "micro-batch size, a shorter maximum length, or QLoRA.")
CHECKPOINT_HINT = "Checkpoints are written completely or not at all, so the last one listed is safe to resume from."


def new_log_path(name: str) -> Path:
    """A fresh log file under the data folder's logs/, pruning the oldest beyond KEEP_LOG_FILES."""
    folder = paths.data_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    old = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for stale in old[:max(0, len(old) - KEEP_LOG_FILES + 1)]:
        stale.unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"{name}-{stamp}-{next(_log_counter)}.log"


def describe_exit(exitcode: Optional[int], forced: bool) -> tuple[str, str]:
    """Plain words (reason, hint) for a worker that ended without reporting a result."""
    if forced:
        return ("The worker did not stop in time and was ended forcibly.", CHECKPOINT_HINT)
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == getattr(signal, "SIGKILL", 9):
            return (f"The worker process was killed ({name}).", OUT_OF_MEMORY_HINT + " " + CHECKPOINT_HINT)
        return (f"The worker process crashed ({name}).", "The log below shows what it was doing. " + CHECKPOINT_HINT)
    return (f"The worker process ended unexpectedly (exit code {exitcode}).",
            "The log below shows what it was doing. " + CHECKPOINT_HINT)


class ProcessHost(QThread):
    """Runs `target(*args, queue, stop_event, **kwargs)` in a spawned child and reports on it.

    `target` is a 'package.module:function' string, imported only in the child, so the window
    never loads the ML stack. Extra channels (a command queue for the chat worker) go in `args`;
    make them with `SPAWN.Queue()`.

    Signals:
        eventReceived(object): an engine event (engine.events.*) sent by the worker, in order.
        logText(str): new text the worker printed (stdout/stderr), in chunks.
        ended(object): emitted once, last: the worker's own Finished/Failed event, a Failed made
            here when it crashed or was killed (with the log tail), or None when it exited
            cleanly without a result (a chat worker after Stop).
    """

    eventReceived = Signal(object)
    logText = Signal(str)
    ended = Signal(object)

    POLL_S = 0.05
    LOG_POLL_S = 0.3

    def __init__(self, target: str, args: tuple = (), kwargs: Optional[dict] = None, *, name: str = "worker",
                 stop_grace_s: float = 120.0, terminate_grace_s: float = 5.0, background: bool = False,
                 parent=None):
        super().__init__(parent)
        self.target = target
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.job_name = name
        self.stop_grace_s = stop_grace_s
        self.terminate_grace_s = terminate_grace_s
        self.background = background  # run the child at a lower CPU priority (see child_entry.lower_priority)
        self.log_path = new_log_path(name)
        self.stop_event = SPAWN.Event()
        self.outcome: Any = None
        self.pid: Optional[int] = None
        self._process = None
        self._stop_requested_at: Optional[float] = None
        self._terminated_at: Optional[float] = None
        self._forced = False
        self._detached = False
        self._log_offset = 0
        self._log_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    # --- called from the GUI thread ------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the worker to stop cleanly; escalates to terminate/kill if it does not."""
        self.stop_event.set()
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()

    def kill_now(self) -> None:
        """End the worker at once (used when the user insists; checkpoints stay whole)."""
        self.request_stop()
        self._stop_requested_at = time.monotonic() - self.stop_grace_s - self.terminate_grace_s

    def detach(self) -> None:
        """Stop listening but let the worker run on (the window closes, training continues).

        The worker's later events are dropped (its run folder still records them); `ended` is not
        emitted. The window's process then exits only when the worker has finished, because
        multiprocessing waits for its non-daemon children at exit.
        """
        self._detached = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested_at is not None

    # --- the thread ----------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - QThread API
        reader, writer = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(target=child_main, name=f"tunesmith-{self.job_name}",
                                args=(self.target, self.args, self.kwargs, writer, self.stop_event,
                                      str(self.log_path), self.background))
        try:
            process.start()
        except Exception as exc:  # noqa: BLE001 - e.g. an argument that cannot be pickled
            self._finish(Failed(reason=f"The worker could not be started: {exc}",
                                hint="This is a bug in Tunesmith; please report it with the log."))
            return
        finally:
            # Only the child may hold the write end: then its death reads as end-of-file here.
            writer.close()
        self._process = process
        self.pid = process.pid
        terminal = self._pump(reader, process)
        reader.close()  # a detached worker's next send fails quietly (see child_entry.PipeQueue)
        if self._detached:
            return
        self._read_new_log()
        self._finish(self._outcome(terminal, process))

    def _pump(self, reader, process) -> Any:
        """Forward events until the pipe closes; return the last Finished/Failed seen (or None)."""
        terminal = None
        next_log_poll = 0.0
        while not self._detached:
            try:
                if reader.poll(self.POLL_S):
                    event = reader.recv()
                    if isinstance(event, (Finished, Failed)):
                        terminal = event
                    self.eventReceived.emit(event)
            except (EOFError, OSError):
                break  # the child exited (or died) and its end of the pipe is closed
            now = time.monotonic()
            if now >= next_log_poll:
                self._read_new_log()
                next_log_poll = now + self.LOG_POLL_S
            self._escalate(process, now)
            if not process.is_alive() and not reader.poll(0):
                break
        if not self._detached:
            self._wait_for_exit(process)
        return terminal

    def _escalate(self, process, now: float) -> None:
        """Stop -> terminate -> kill, each after its grace period."""
        if self._stop_requested_at is None or not process.is_alive():
            return
        waited = now - self._stop_requested_at
        if self._terminated_at is None and waited >= self.stop_grace_s:
            self._forced = True
            self._terminated_at = now
            process.terminate()
        elif self._terminated_at is not None and now - self._terminated_at >= self.terminate_grace_s:
            process.kill()

    def _wait_for_exit(self, process) -> None:
        """The pipe closed; give the process a moment to exit, then make sure it has."""
        process.join(self.terminate_grace_s)
        if process.is_alive():
            self._forced = True
            process.kill()
            process.join(self.terminate_grace_s)

    def _outcome(self, terminal: Any, process) -> Any:
        if isinstance(terminal, Failed) and not terminal.log_tail:
            return dataclasses.replace(terminal, log_tail=read_log_tail(self.log_path))
        if terminal is not None:
            return terminal
        if process.exitcode == 0 and not self._forced:
            return None
        reason, hint = describe_exit(process.exitcode, self._forced)
        return Failed(reason=reason, hint=hint, log_tail=read_log_tail(self.log_path))

    def _finish(self, outcome: Any) -> None:
        self.outcome = outcome
        self.ended.emit(outcome)

    def _read_new_log(self) -> None:
        """Forward what the child printed since the last look."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                chunk = fh.read(256 * 1024)
        except OSError:
            return
        if chunk:
            self._log_offset += len(chunk)
            text = self._log_decoder.decode(chunk)  # incremental: a character may straddle two reads
            if text:
                self.logText.emit(text)
