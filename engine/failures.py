"""Why a job ended without a result, in plain words: the one place every worker turns an exception
into the `Failed` event the user reads (training, chat, evaluation, export).

A TunesmithError is the user's to fix and is shown as it is. Running out of memory is told apart
for the GPU and for the computer's own memory (the advice differs), a full disk and a folder that
cannot be written get their own words, and anything else is reported as unexpected, with the log.
"""
from __future__ import annotations

import errno
import traceback
from typing import Optional

from engine.errors import TunesmithError
from engine.events import Failed

GPU_MEMORY_HINT = ("Use a smaller micro-batch (training.micro_batch_size), a shorter maximum length "
                   "(data.max_length), gradient checkpointing (training.gradient_checkpointing=on), or QLoRA; "
                   "or close other programs that use the GPU.")
CPU_MEMORY_HINT = ("Close other programs, or use a smaller micro-batch (training.micro_batch_size), a shorter "
                   "maximum length (data.max_length), gradient checkpointing (training.gradient_checkpointing=on) "
                   "or QLoRA, which keeps the base model in a quarter of the memory.")
DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
LOG_TAIL_CHARS = 4000


def memory_kind(exc: BaseException) -> Optional[str]:
    """'gpu' or 'cpu' when `exc` says memory ran out, else None.

    PyTorch raises OutOfMemoryError for the GPU, but a plain RuntimeError ("DefaultCPUAllocator:
    can't allocate memory") for the CPU; Python's own allocations raise MemoryError.
    """
    if isinstance(exc, MemoryError):
        return "cpu"
    text = str(exc)
    if "DefaultCPUAllocator" in text or "CPU out of memory" in text:
        return "cpu"
    if type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text:
        return "gpu"
    return None


def log_tail(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-LOG_TAIL_CHARS:]


def _join(*parts: str) -> str:
    return " ".join(part.strip() for part in parts if part and part.strip())


def describe(exc: BaseException, doing: str, *, fix_hint: str = "", kept: str = "", memory_hint: str = "") -> Failed:
    """The Failed event for an exception raised while `doing` (e.g. "training", "evaluating the run").

    fix_hint: what to do after fixing a user error. kept: what survived (e.g. "The checkpoint at step
    40 is kept: ..."), added to every hint where it helps. memory_hint: advice for running out of
    memory when the training advice does not apply (chat, evaluation).
    """
    if isinstance(exc, TunesmithError):
        return Failed(reason=str(exc), hint=_join(fix_hint, kept))
    kind = memory_kind(exc)
    if kind == "gpu":
        return Failed(reason=f"The GPU ran out of memory while {doing}.",
                      hint=_join(memory_hint or GPU_MEMORY_HINT, kept), log_tail=log_tail(exc))
    if kind == "cpu":
        return Failed(reason=f"The computer ran out of memory (RAM) while {doing}.",
                      hint=_join(memory_hint or CPU_MEMORY_HINT, kept), log_tail=log_tail(exc))
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return Failed(reason=f"The disk is full: a file could not be written while {doing}{where}.",
                      hint=_join("Free some space on that disk, or choose a folder on another disk.", kept),
                      log_tail=log_tail(exc))
    if isinstance(exc, PermissionError):
        return Failed(reason=f"Permission denied while {doing}: {exc.filename or exc}.",
                      hint=_join("Choose a folder you can write to.", kept), log_tail=log_tail(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Failed(reason=f"Interrupted while {doing}.", hint=kept)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Failed(reason=f"Something unexpected went wrong while {doing}: {type(exc).__name__}"
                         f"{': ' + detail if detail else ''}.",
                  hint=_join("The log below has the details; please include it when reporting the problem.", kept),
                  log_tail=log_tail(exc))
