"""What a spawned worker process runs first: capture its output, then call the engine entry point.

This module is imported inside the child process, so it must stay free of Qt (and of the ML
stack: the engine entry point imports that itself). It does three things the engine should not
have to care about:

- it sends the child's stdout and stderr (including C-level output such as CUDA errors and the
  fault handler's stack dump) to a log file, so the window can show the log tail after a crash;
- it hands the engine a queue-like object whose `put` writes to a one-way pipe; unlike a
  multiprocessing.Queue, the parent sees end-of-file when the child dies, so a killed child can
  never leave the window waiting for a message that will not come;
- it turns an exception that escapes the entry point into a `Failed` event with the log tail.
"""
from __future__ import annotations

import faulthandler
import importlib
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 40


def resolve_target(ref: str):
    """'package.module:function' -> the function (imported in whichever process calls this)."""
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"worker target must look like 'package.module:function', got {ref!r}")
    return getattr(importlib.import_module(module_name), func_name)


def read_log_tail(path: str | os.PathLike, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ("" when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class PipeQueue:
    """The `queue` the engine puts events on: a thread-safe writer to the parent's pipe.

    Once the parent has gone away (the window closed while training continues in the
    background), events are dropped silently: the engine's metrics.jsonl still records them.
    """

    def __init__(self, connection):
        self._connection = connection
        self._lock = threading.Lock()
        self._closed = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._connection.send(item)
            except (BrokenPipeError, EOFError, OSError):
                self._closed = True

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)


def redirect_output(log_path: str) -> None:
    """Point file descriptors 1 and 2 (and Python's sys.stdout/stderr) at the log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    for stream_fd in (1, 2):
        try:
            os.dup2(log_file.fileno(), stream_fd)
        except OSError:
            pass  # no real descriptors (a windowed frozen app on Windows): Python-level capture still works
    sys.stdout = log_file
    sys.stderr = log_file
    # A segfault or an abort in native code prints the Python stack here, so the log tail says where.
    faulthandler.enable(log_file)


def lower_priority() -> None:
    """Make this process yield the CPU to the window when both want it.

    CPU training keeps every core busy; at equal priority the window then waits for the scheduler
    and stutters. The window needs about 1 % of one core, so training loses next to nothing.
    """
    try:
        if hasattr(os, "nice"):
            os.nice(5)
        else:  # Windows
            import psutil

            psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
    except (OSError, ImportError, AttributeError):
        pass  # not allowed or not available: run at normal priority


def child_main(target_ref: str, args: tuple, kwargs: dict, connection, stop_event, log_path: str,
               background: bool = False) -> None:
    """Entry point of every worker process started by gui.process_host.ProcessHost.

    Calls `target(*args, queue, stop_event, **kwargs)`, the signature of the engine's worker
    functions (e.g. engine.worker.train_main(config_dict, queue, stop_event)). `background`
    lowers the process's priority (long CPU-heavy jobs such as training).
    """
    redirect_output(log_path)
    if background:
        lower_priority()
    queue = PipeQueue(connection)
    try:
        target = resolve_target(target_ref)
        target(*args, queue, stop_event, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the last line of defence: report, never vanish silently
        traceback.print_exc()
        sys.stderr.flush()
        from engine.events import Failed

        reason = f"The worker stopped with an unexpected error: {type(exc).__name__}: {exc}"
        queue.put(Failed(reason=reason, hint="The log below shows where it happened.",
                         log_tail=read_log_tail(log_path)))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
