"""Files written whole or not at all, even when two processes write the same file at once.

The content goes to a temporary file with a name of its own beside the target, which then replaces
the target in one rename. A reader sees the old file or the new one, never a mix; two writers (two
evaluations of one run, say) each rename a complete file, and the last one wins.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def write_bytes(path: Union[str, Path], data: bytes) -> None:
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the result should read like any other file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Union[str, Path], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
