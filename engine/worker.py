"""Child-process entry points: what a spawned worker runs for the window (engine.worker.<name>_main).

Each takes plain data (picklable), puts events on a multiprocessing queue, and turns every
exception into a `Failed` event with the log tail, so the window never has to parse a traceback.
"""
from __future__ import annotations

import traceback

OOM_HINT = ("Use a smaller batch (training.micro_batch_size or --batch-size), a shorter maximum length, "
            "turn on gradient checkpointing, or switch to QLoRA.")


def _failure(exc: BaseException):
    from engine.events import Failed

    tail = traceback.format_exc()[-4000:]
    text = str(exc)
    if "out of memory" in text.lower() or exc.__class__.__name__ in ("OutOfMemoryError", "MemoryError"):
        return Failed(reason="Training ran out of memory.", hint=OOM_HINT, log_tail=tail)
    return Failed(reason=f"Training stopped unexpectedly: {text or exc.__class__.__name__}.",
                  hint="The log below has the details; please include it when reporting the problem.", log_tail=tail)


def train_main(config_dict: dict, queue, stop_event, resume_from: str | None = None) -> None:
    """Run one training in this (spawned) process, putting every event on `queue`."""
    try:
        from engine import config as cfg
        from engine.train import run_training

        config = cfg.from_dict(config_dict, source="run settings")
        run_training(config, queue.put, stop=stop_event, resume_from=resume_from)
    except Exception as exc:  # anything unforeseen still reaches the window as plain words + log
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
        from engine.errors import TunesmithError
        from engine.export import export_run

        try:
            path = export_run(run_dir, to, out, progress)
        except TunesmithError as exc:
            queue.put(Failed(reason=str(exc)))
            return
        queue.put(Finished(run_dir=str(run_dir), output_path=str(path), reason="completed", step=0))
    except _Cancelled:
        queue.put(Failed(reason="Export cancelled: nothing was written."))
    except Exception as exc:  # unforeseen: plain words plus the log tail, like training
        queue.put(Failed(reason=f"The export stopped unexpectedly: {exc or exc.__class__.__name__}.",
                         hint="The log below has the details.", log_tail=traceback.format_exc()[-4000:]))
