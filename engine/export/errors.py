"""The one error type of the export package and the progress callback it reports through."""
from __future__ import annotations

from typing import Callable, Optional

from engine.errors import TunesmithError

# Same shape as engine.models.Progress: (message in plain words, fraction done 0..1).
Progress = Callable[[str, float], None]


class ExportError(TunesmithError, RuntimeError):
    """An export that cannot be done; the message says what is wrong and what to do."""


def report(progress: Optional[Progress], message: str, fraction: float) -> None:
    """Call the progress callback if there is one (exceptions it raises abort the export)."""
    if progress is not None:
        progress(message, max(0.0, min(1.0, fraction)))
