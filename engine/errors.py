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
