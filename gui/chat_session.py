"""The chat worker of one run, seen from the window: ask a question, get both sides' answers as signals.

The worker (engine.evaluate.worker.chat_main) loads the run once and serves requests from a queue.
Each side keeps its own history (base sees base's earlier replies, tuned sees tuned's), so a
question is sent as two requests, base first, then tuned once base is done: the worker treats a
new request as "stop the current answer", so the second may only go when the first has finished.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from engine.events import Event, Failed, GenerationDone, Notice, Token
from gui.process_host import SPAWN, ProcessHost

CHAT_TARGET = "engine.evaluate.worker:chat_main"
SIDES = ("base", "tuned")


class ChatSession(QObject):
    """Signals:
        ready(str): the model is loaded; the argument says on what device.
        token(str, str): side, a piece of its answer.
        answerDone(str, object): side, its GenerationDone (tokens, seconds).
        problem(str): something went wrong, in plain words (the session may go on).
        turnFinished(): every side answered the last question, or Stop ended the turn.
        ended(object): the worker process ended (its outcome; None after a clean quit).
    """

    ready = Signal(str)
    token = Signal(str, str)
    answerDone = Signal(str, object)
    problem = Signal(str)
    turnFinished = Signal()
    ended = Signal(object)

    def __init__(self, run_dir: str, parent: Optional[QObject] = None, *, target: str = CHAT_TARGET):
        super().__init__(parent)
        self.run_dir = str(run_dir)
        self.requests = SPAWN.Queue()
        self.host = ProcessHost(target, args=(self.run_dir, self.requests), name="chat", stop_grace_s=5.0,
                                parent=self)
        self.host.eventReceived.connect(self._on_event)
        self.host.ended.connect(self._on_ended)
        self.is_ready = False
        self.alive = False
        self._next_request = 1
        self._current: Optional[tuple[int, str]] = None  # (request id, side) being answered
        self._queued: list[tuple[str, list]] = []  # (side, messages) still to ask this turn
        self._settings: dict = {}
        self._last_problem = ""

    def start(self) -> None:
        """Start the worker; `ready` follows once the model is loaded."""
        self.alive = True
        self.host.start()

    @property
    def busy(self) -> bool:
        """A turn is being answered."""
        return self._current is not None or bool(self._queued)

    def ask(self, histories: dict[str, list], settings: dict) -> None:
        """Answer one turn: `histories[side]` is that side's conversation, ending with the user's message."""
        self._settings = dict(settings)
        self._queued = [(side, histories[side]) for side in SIDES if side in histories]
        self._send_next()

    def stop_generating(self) -> None:
        """End the answer being written and skip the sides not yet answered."""
        self._queued.clear()
        if self._current is not None:
            self.requests.put({"type": "stop"})

    def close(self, wait_ms: int = 10000) -> None:
        """Ask the worker to quit and wait for it (the host kills it if it does not)."""
        if not self.alive:
            return
        self._queued.clear()
        self.requests.put({"type": "quit"})
        self.host.request_stop()
        self.host.wait(wait_ms)

    # --- internals ----------------------------------------------------------------------------
    def _send_next(self) -> None:
        if not self._queued:
            self._current = None
            self.turnFinished.emit()
            return
        side, messages = self._queued.pop(0)
        number = self._next_request
        self._next_request += 1
        self._current = (number, side)
        self.requests.put({"request": number, "messages": messages, "sides": [side], "settings": self._settings})

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Token):
            if self._current and event.request == self._current[0]:
                self.token.emit(event.side, event.text)
        elif isinstance(event, GenerationDone):
            if self._current and event.request == self._current[0]:
                self.answerDone.emit(event.side, event)
                self._send_next()
        elif isinstance(event, Notice):
            if event.message.startswith("ready"):
                self.is_ready = True
                self.ready.emit(event.message.partition(":")[2].strip() or event.message)
        elif isinstance(event, Failed):
            self._last_problem = event.reason
            self._queued.clear()
            self.problem.emit(f"{event.reason} {event.hint}".strip())
            if self._current is not None:
                self._current = None
                self.turnFinished.emit()

    def _on_ended(self, outcome) -> None:
        self.alive = False
        self.is_ready = False
        # A Failed the worker sent itself was already shown; one made by the host (a crash) was not.
        if isinstance(outcome, Failed) and outcome.reason != self._last_problem:
            self.problem.emit(f"{outcome.reason} {outcome.hint}".strip())
        if self._current is not None or self._queued:
            self._queued.clear()
            self._current = None
            self.turnFinished.emit()
        self.ended.emit(outcome)
