"""The one error type for problems with the user's data.

Every message says what is wrong, where (file, row, field) and what to do, so the CLI and the window
can show it as is, without a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from engine.errors import TunesmithError


class DataError(TunesmithError, ValueError):
    """A problem with the user's data; `str()` reads "FILE, row N, field 'x': what is wrong. What to do."."""

    def __init__(self, message: str, *, file: Optional[Union[str, Path]] = None, row: Optional[int] = None,
                 field: Optional[str] = None, hint: Optional[str] = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = self.message.rstrip()
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.hint:
            if not text.endswith((".", "!", "?", ":")):
                text += "."
            text += f" {self.hint.rstrip()}"
        return text

    def with_file(self, file: Union[str, Path]) -> "DataError":
        """The same error, naming the file (for errors raised where the file was not known)."""
        return DataError(self.message, file=file, row=self.row, field=self.field, hint=self.hint)
