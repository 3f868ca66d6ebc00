"""Library warnings go to the run folder's details.log, not into the log the user reads.

PyTorch, transformers, PEFT and bitsandbytes warn about deprecations and optional extras
("FutureWarning: `is_gradient_checkpointing` is deprecated...", "Failed to load CPU
gemm_4bit_forward from kernels-community..."): useful in a bug report, noise to someone who is
training a model. While a run trains, Python warnings and the libraries' log records are written to
RUN/details.log (held in memory until the run folder exists), and the user's log gets, in plain
words, the few that change something for them, plus one line saying where the rest are.
"""
from __future__ import annotations

import logging
import re
import time
import warnings
from pathlib import Path
from typing import Optional

DETAILS_FILE = "details.log"
LIBRARY_LOGGERS = ("transformers", "peft", "bitsandbytes", "accelerate", "torch", "huggingface_hub", "datasets",
                   "safetensors", "tokenizers")

# Library messages that matter to the user, what they mean in plain words, and the methods they concern
# (None: every method). bitsandbytes is imported by PEFT for every method, so its kernel message also
# appears in LoRA runs, where no 4-bit layer exists and the sentence would only puzzle.
PLAIN_WORDS = (
    (re.compile(r"gemm_4bit_forward|kernels-community"),
     "QLoRA's 4-bit layers use the built-in CPU code path here (an optional faster one is not installed); "
     "the results are the same.", ("qlora",)),
)


class _Handler(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink(f"{record.levelname} {record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a log record that cannot be formatted must not stop training
            pass


class LibraryMessages:
    """A context manager routing library warnings and log records to RUN/details.log.

    `attach(path)` starts writing (earlier messages are kept in memory until then); `plain_words()`
    returns what the user should read about the messages seen since the last call.
    """

    def __init__(self):
        self.lines: list[str] = []
        self._written = 0
        self._said = 0
        self._told_file = False
        self._said_known: set[str] = set()
        self.path: Optional[Path] = None
        self._handler = _Handler(self._add)
        self._saved_loggers: list = []
        self._saved_showwarning = None

    # --- routing -----------------------------------------------------------------------------
    def __enter__(self) -> "LibraryMessages":
        try:  # transformers adds its own stderr handler when first used: let it do so now, then set it aside
            from transformers.utils import logging as hf_logging

            hf_logging.get_logger("transformers")
        except ImportError:
            pass
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_loggers.append((logger, list(logger.handlers), logger.propagate))
            logger.handlers = [self._handler]
            logger.propagate = False
        self._saved_showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        return self

    def __exit__(self, *exc) -> None:
        warnings.showwarning = self._saved_showwarning
        for logger, handlers, propagate in self._saved_loggers:
            logger.handlers = handlers
            logger.propagate = propagate
        self._saved_loggers.clear()

    def _show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self._add(f"{category.__name__} ({Path(filename).name}:{lineno}): {message}")

    def _add(self, text: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {text}")
        self._flush()

    def attach(self, path: Path) -> None:
        """Write the messages to `path` from now on (appending: a resumed run keeps the earlier ones)."""
        self.path = Path(path)
        self._flush()

    def _flush(self) -> None:
        if self.path is None or self._written == len(self.lines):
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(line.rstrip("\n") + "\n" for line in self.lines[self._written:]))
            self._written = len(self.lines)
        except OSError:
            pass  # a full disk is reported by the checkpoint that fails next, not by this side file

    # --- what the user reads -------------------------------------------------------------------
    def plain_words(self, method: str) -> list[str]:
        """Plain-words notes on the messages seen since the last call that concern `method` (each said once)."""
        fresh, self._said = self.lines[self._said:], len(self.lines)
        said = []
        for pattern, words, methods in PLAIN_WORDS:
            if methods is not None and method not in methods:
                continue
            if words not in self._said_known and any(pattern.search(line) for line in fresh):
                self._said_known.add(words)
                said.append(words)
        if fresh and self.path is not None and not self._told_file:
            self._told_file = True
            said.append(f"Technical messages from the libraries are kept in {self.path} (useful in a bug report; "
                        "nothing to do).")
        return said
