"""Whether a model's own Python code may run (transformers' `trust_remote_code`), for one job at a time.

Some hub models ship their architecture as Python files beside the weights; loading such a model
runs those files with the user's rights. That is off unless the user asks for it for a run
(`model.trust_remote_code: true`, or `tunesmith-cli train --trust-remote-code`); the run records it in
run-info.json, so chat, evaluation and export of that run load it the same way, and nothing else does.

A job (a training run, a chat, an evaluation, an export) sets the permission for as long as it lasts
with `allowed(...)`; every `from_pretrained` of a model folder passes `**kwargs()`. A context variable
rather than an argument threaded through every loader: the permission belongs to the job, and the
loaders are shared by all jobs.
"""
from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Iterator

_ALLOWED = contextvars.ContextVar("tunesmith_trust_remote_code", default=False)


def kwargs() -> dict:
    """What to pass to transformers' from_pretrained: trust_remote_code=True only inside an allowing job."""
    return {"trust_remote_code": True} if _ALLOWED.get() else {}


def is_allowed() -> bool:
    return _ALLOWED.get()


@contextlib.contextmanager
def allowed(permission: bool) -> Iterator[None]:
    """Within this block, models may (True) or may not (False) run their own Python code."""
    token = _ALLOWED.set(bool(permission))
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def warning(model_dir: Path | str) -> str:
    """What turning it on allows, in plain words, naming the files that will run."""
    files = sorted(p.name for p in Path(model_dir).glob("*.py")) if Path(model_dir).is_dir() else []
    named = f" ({', '.join(files)})" if files else ""
    return ("model.trust_remote_code is on: the Python code that comes with this model" + named + " runs on this "
            "computer with your permissions while the model loads, in training, chat, evaluation and export. It "
            "can read, change or send any of your files. Use it only for models from publishers you trust, and "
            "read those files first.")
