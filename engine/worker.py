"""Child-process entry points: what a spawned worker runs for the window (engine.worker.<name>_main).

Each takes plain data (picklable), puts events on a multiprocessing queue, and turns every
exception into a `Failed` event with the log tail, so the window never has to parse a traceback.
"""
from __future__ import annotations

import signal
import threading


class _StopOnTerminate:
    """The window's stop event, also set by SIGTERM (the window's "end it" after the grace period,
    or a system shutdown): the run then finishes its step, saves and ends as "stopped", not killed.

    A plain flag, not the multiprocessing Event: a signal handler must not wait for a lock.
    """

    def __init__(self, shared):
        self.shared, self.terminated = shared, False

    def is_set(self) -> bool:
        return self.terminated or bool(self.shared is not None and self.shared.is_set())

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_terminate)

    def _on_terminate(self, signum, frame) -> None:
        if self.terminated:  # asked twice: end now (the last complete checkpoint is kept)
            raise SystemExit(128 + signum)
        self.terminated = True


def train_main(config_dict: dict, queue, stop_event, resume_from: str | None = None) -> None:
    """Run one training in this (spawned) process, putting every event on `queue`."""
    from engine import failures

    stop = _StopOnTerminate(stop_event)
    stop.install()
    try:
        from engine import config as cfg
        from engine.train import run_training

        config = cfg.from_dict(config_dict, source="run settings")
        run_training(config, queue.put, stop=stop, resume_from=resume_from)
    except Exception as exc:  # what run_training cannot report itself (e.g. settings that do not parse)
        queue.put(failures.describe(exc, "starting the training", fix_hint="Fix the problem above and start again."))


def calibrate_main(config_dict: dict, queue, stop_event=None) -> None:
    """Measure this machine's speed for the config's model and method (engine.train.calibrate); the
    rates land in the data folder's throughput.json, where the window reads them. Ends with Finished."""
    from engine.events import Finished

    try:
        from engine import config as cfg
        from engine.models import resolve_model
        from engine.train.calibrate import calibrate

        config = cfg.from_dict(config_dict, source="plan settings")
        calibrate(config, resolve_model(config.model.name))
        queue.put(Finished(run_dir="", output_path="", reason="completed", step=0))
    except Exception as exc:
        queue.put(_failure(exc))


def chat_main(run_dir: str, request_queue, event_queue, stop_event=None) -> None:
    """Serve side-by-side chat for one run (see engine.evaluate.worker.chat_main for the protocol)."""
    from engine.evaluate.worker import chat_main as serve_chat

    serve_chat(run_dir, request_queue, event_queue, stop_event)


def eval_main(run_dir: str, queue, stop_event=None, options: dict | None = None) -> None:
    """Evaluate one run, base versus tuned (see engine.evaluate.worker.eval_main for the events)."""
    from engine.evaluate.worker import eval_main as evaluate

    evaluate(run_dir, queue, stop_event, options)


class _Cancelled(Exception):
    """Raised from the export's progress callback when the window asks to stop."""


def export_main(run_dir: str, to: str, out: str, queue, stop_event=None) -> None:
    """Export one run (engine.export.export_run) with progress; ends with Finished(output_path) or Failed."""
    import time

    from engine.events import Failed, Finished, Notice, Progress

    started = time.monotonic()

    def progress(message: str, fraction: float) -> None:
        if stop_event is not None and stop_event.is_set():
            raise _Cancelled()
        queue.put(Notice(message=message))
        queue.put(Progress(step=int(100 * fraction), total_steps=100, epoch=0.0,
                           elapsed_s=time.monotonic() - started, eta_s=None))

    try:
        from engine.export import export_run

        path = export_run(run_dir, to, out, progress)
        queue.put(Finished(run_dir=str(run_dir), output_path=str(path), reason="completed", step=0))
    except _Cancelled:
        queue.put(Failed(reason="Export cancelled: nothing was written."))
    except Exception as exc:  # a TunesmithError in its own words; anything else with the log tail
        from engine import failures

        queue.put(failures.describe(exc, "exporting"))
