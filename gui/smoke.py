"""Packaging checks of the window (`tunesmith --smoke-test ...`), run by packaging/smoke.sh on the bundle.

    --smoke-test                       open offscreen, close after ~2 s (the window starts at all)
    --smoke-test --expect-model-ready  wait until the Method view shows the model ready; exit 1 if it fails
    --smoke-test --first-loss          then press Start training and wait for the first loss point
    --screenshot FILE                  save the window as it looks at the end

Each step prints the seconds since the program started, which packaging/README.md records.
"""
from __future__ import annotations

import sys
import time
from typing import Optional

from PySide6.QtCore import QTimer

STARTED = time.monotonic()
TIMEOUT_MS = 600_000


def _say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {text}", flush=True)


class SmokeCheck:
    """Drives a MainWindow through the checks asked for, then ends the event loop with 0 or 1."""

    def __init__(self, app, window, *, first_loss: bool, screenshot: Optional[str]):
        self.app, self.window, self.first_loss, self.screenshot = app, window, first_loss, screenshot
        self.code: Optional[int] = None
        picker = window.method_view.model_picker
        picker.modelReady.connect(self._on_ready)
        picker.modelFailed.connect(lambda message: self._end(1, f"model failed: {message}"))
        self.deadline = QTimer(window, singleShot=True, interval=TIMEOUT_MS)
        self.deadline.timeout.connect(lambda: self._end(1, "timed out"))
        self.deadline.start()
        _say("window shown")

    def _on_ready(self, folder: str) -> None:
        status = self.window.method_view.model_picker.status.text().splitlines()[0]
        _say(f"model ready: {status} ({folder})")
        if not self.first_loss:
            self.window.tabs.setCurrentIndex(1)  # the Method view, where the model shows as ready
            self._end(0, "smoke test passed")
            return
        view = self.window.training_view
        self.window.tabs.setCurrentIndex(2)
        if not view.start_training():
            self._end(1, "training was refused")
            return
        _say("training started")
        view.host.eventReceived.connect(self._on_event)
        view.trainingEnded.connect(lambda outcome: self._end(0 if self._seen_loss else 1,
                                                            f"training ended: {type(outcome).__name__}"))
        self._seen_loss = False

    def _on_event(self, event) -> None:
        if type(event).__name__ == "FirstLoss" and not self._seen_loss:
            self._seen_loss = True
            _say(f"first loss point: {getattr(event, 'loss', '?')}")
            self._save()
            self.window.training_view.stop_training()

    def _save(self) -> None:
        if self.screenshot:
            self.window.grab().save(self.screenshot)
            _say(f"screenshot: {self.screenshot}")

    def _end(self, code: int, text: str) -> None:
        if self.code is not None:
            return
        self.code = code
        self.deadline.stop()
        if not (self.first_loss and code == 0):
            self._save()
        _say(text)
        print(text, file=sys.stderr if code else sys.stdout, flush=True)
        self.app.exit(code)
