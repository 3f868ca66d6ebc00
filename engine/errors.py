"""The one base class for problems the user can fix, so every front end catches them in one place.

Each subclass belongs to one part of the engine (data, config, model, run folder, evaluation,
export, downloads, the data folder, the CLI's own arguments). Their messages already say what is wrong, where (file, row,
field, setting) and what to do, so the CLI prints them as they are, the worker sends them as a
`Failed` reason without a traceback, and the window shows them as they are. Anything that is not a
`TunesmithError` is unexpected and is reported with its log.
"""
from __future__ import annotations


class TunesmithError(Exception):
    """A problem caused by the user's input or files; `str()` is the message to show, as is."""


def plain_message(exc: BaseException) -> str:
    """The message to show a user for any exception.

    The engine's own errors (every TunesmithError) already read as plain words, and so do a missing or
    unreadable file; anything else is unexpected, so its kind is named to help a bug report. The window
    uses this for work it runs on a thread and for work its engine helper process runs for it.
    """
    if isinstance(exc, (TunesmithError, FileNotFoundError, PermissionError)):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}): {exc}"
