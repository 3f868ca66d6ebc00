"""Child-process entry points for the window: the chat server and the evaluation job.

Both talk only through queues of engine.events, so the window never loads a model itself. A
crash or out-of-memory kills the child, never the window; anything the user can cause arrives
as a `Failed` event with a plain-words reason.
"""
from __future__ import annotations

import queue as queue_module
from collections import deque
from typing import Any, Optional

from engine.events import Failed, Finished, GenerationDone, Notice, Token

QUIT = "quit"
STOP = "stop"


def _failure(exc: BaseException, doing: str) -> Failed:
    from engine import failures

    return failures.describe(exc, doing, memory_hint="Close other programs, or lower max new tokens.")


class _AnyStop:
    """Stop when either the window's shared stop event or this request's own stop is set."""

    def __init__(self, shared: Any):
        import threading

        self.shared, self.own = shared, threading.Event()

    def is_set(self) -> bool:
        return self.own.is_set() or bool(self.shared is not None and self.shared.is_set())


class _Inbox:
    """The request queue, read without blocking while an answer streams, so Stop and Quit act at once."""

    def __init__(self, requests):
        self.requests, self.pending, self.quit = requests, deque(), False

    def _take(self, message: Any, current: Optional[_AnyStop]) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if message is None or kind == QUIT:
            self.quit = True
        elif kind != STOP:
            self.pending.append(message)
        # Stop, Quit and a new question all end the answer being written (the newest question wins).
        if current is not None:
            current.own.set()

    def poll(self, current: _AnyStop) -> None:
        while True:
            try:
                self._take(self.requests.get_nowait(), current)
            except queue_module.Empty:
                return

    def next(self, shutdown: Any = None) -> Any:
        """The next request, waiting for one; None once Quit was asked or `shutdown` is set."""
        while not self.pending and not self.quit:
            if shutdown is not None and shutdown.is_set():
                return None
            try:
                self._take(self.requests.get(timeout=0.25), None)
            except queue_module.Empty:
                continue
        return None if self.quit else self.pending.popleft()


def _serve_request(chat, request: dict, events, inbox: _Inbox, shared_stop: Any) -> None:
    from engine.evaluate.settings import GenerationSettings

    number = int(request.get("request", 0))
    sides = request.get("sides") or [request.get("side", "tuned")]
    settings = GenerationSettings.from_dict(request.get("settings"))
    stop = _AnyStop(shared_stop)
    for side in sides:
        if stop.is_set():
            break
        generation = chat.stream(request.get("messages"), side, settings, stop)
        for piece in generation:
            events.put(Token(request=number, side=side, text=piece))
            inbox.poll(stop)
        events.put(GenerationDone(request=number, side=side, tokens=generation.tokens,
                                  seconds=round(generation.seconds, 3), first_token_s=generation.first_token_s))


def chat_main(run_dir: str, request_queue, event_queue, stop_event: Any = None) -> None:
    """Serve chat requests for one run until a None or {"type": "quit"} request arrives.

    A request is {"request": id, "messages": [{role, content}...], "sides": ["base", "tuned"] (or
    "side": "tuned"), "settings": GenerationSettings fields}. For each side in order it emits Token
    events (request, side, text) and then GenerationDone; errors arrive as Failed and the server goes
    on. {"type": "stop"} stops the answer being written; a new request while answering does too (the
    newest wins). `stop_event` (the process host's) ends the answer AND the server. After loading it
    emits Notice("ready: ..."); if loading fails it emits Failed and returns.
    """
    from engine.evaluate.chat import ChatModel

    try:
        chat = ChatModel(run_dir)
    except Exception as exc:  # reported to the window, which shows it in plain words
        event_queue.put(_failure(exc, "loading the chat model"))
        return
    shared = ("one shared copy of the base weights" if chat.shares_weights
              else "base loaded separately (full fine-tuning)")
    event_queue.put(Notice(message=f"ready: {chat.run.path.name} on {chat.loaded.device}, {shared}"))
    inbox = _Inbox(request_queue)
    while True:
        request = inbox.next(stop_event)
        if request is None:
            return
        try:
            _serve_request(chat, request, event_queue, inbox, stop_event)
        except Exception as exc:
            event_queue.put(_failure(exc, "answering"))


def eval_main(run_dir: str, event_queue, stop_event: Any = None, options: Optional[dict] = None) -> None:
    """Evaluate a run (engine.evaluate.evaluate_run) and report through `event_queue`.

    Emits Notice and Progress while working, then Finished(output_path=RUN/eval/results.json,
    reason "completed" or "stopped") or Failed. `options` may set examples, max_new_tokens, probe.
    """
    from engine.evaluate.before_after import RESULTS_FILE, evaluate_run

    try:
        results = evaluate_run(run_dir, sink=event_queue.put, stop=stop_event, **(options or {}))
    except Exception as exc:
        event_queue.put(_failure(exc, "evaluating the run"))
        return
    reason = "stopped" if results.get("stopped") else "completed"
    event_queue.put(Finished(run_dir=str(run_dir), output_path=f"{results['run_dir']}/eval/{RESULTS_FILE}",
                             reason=reason, step=0))
