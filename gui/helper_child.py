"""What the engine helper process runs: answer the window's requests, one lane at a time each.

Runs inside the helper child (gui.engine_helper starts it), so it stays free of Qt; the jobs
themselves are engine.window_jobs. A
request is a dict {id, job, args, kwargs, lane, home}; the answer is {id, result} with plain data,
{id, error} with the message to show, or, while a job works, {id, progress: [message, fraction]}.

Jobs of one lane run one after another on that lane's own thread, in the order asked: a lane's
tokenizer is then used by one thread only (a fast tokenizer must not encode in two threads at once),
and the window's newest request is never overtaken by an older one. Different lanes run side by
side, so a preview never waits behind a file being measured or a model being converted.
"""
from __future__ import annotations

import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from engine.errors import TunesmithError, plain_message
from gui.child_entry import redirect_output

# The data folder the window works in (engine.paths.data_dir), when set from outside. It travels with
# each request, so the helper prepares models in the window's folder even after the folder changed
# (each test has its own).
HOME_VARIABLE = "TUNESMITH_HOME"


def _use_home(home) -> None:
    """Work in the window's data folder (engine.paths.data_dir reads this variable on every call)."""
    if home:
        os.environ[HOME_VARIABLE] = home
    else:
        os.environ.pop(HOME_VARIABLE, None)


class _Server:
    def __init__(self, connection, jobs: dict[str, Callable[..., Any]]):
        self._connection = connection
        self._jobs = jobs
        self._send_lock = threading.Lock()  # a Connection is not safe to send on from two threads
        self._lanes: dict[str, ThreadPoolExecutor] = {}

    def send(self, message: dict) -> None:
        with self._send_lock:
            try:
                self._connection.send(message)
            except (BrokenPipeError, EOFError, OSError):
                pass  # the window has gone; the helper ends when it reads end-of-file

    def serve(self) -> None:
        while True:
            try:
                request = self._connection.recv()
            except (EOFError, OSError):
                return  # the window's process has gone
            if request is None:
                return  # the window shuts the helper down
            lane = request.get("lane", "default")
            if lane not in self._lanes:
                self._lanes[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"helper-{lane}")
            self._lanes[lane].submit(self._run, request)

    def _run(self, request: dict) -> None:
        request_id = request["id"]
        _use_home(request.get("home"))
        kwargs = dict(request.get("kwargs") or {})
        try:
            job = self._jobs[request["job"]]
            if getattr(job, "reports_progress", False):
                kwargs["progress"] = lambda message, fraction: self.send(
                    {"id": request_id, "progress": [str(message), float(fraction)]})
            result = job(*request.get("args", ()), **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the window as words
            if not isinstance(exc, TunesmithError):
                traceback.print_exc()  # unexpected: the helper's log keeps where it happened
            self.send({"id": request_id, "error": plain_message(exc)})
        else:
            self.send({"id": request_id, "result": result})


def serve(connection, log_path: str) -> None:
    """Entry point of the helper child: answer requests until the window says stop or goes away."""
    redirect_output(log_path)
    from engine.window_jobs import JOBS, load_ml_stack

    load_ml_stack()
    _Server(connection, JOBS).serve()
    # Jobs still running answer a window that no longer listens: end now rather than wait for them.
    os._exit(0)
