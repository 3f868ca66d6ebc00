"""Side-by-side chat: the base model and the tuned model answer the same conversation.

One `ChatModel` holds a run's weights once (see engine.evaluate.loading) and streams answers for
either side. Prompts are built with `engine.templates.prompt_ids` and the run's own tokenizer, so
the chat layout is exactly the training layout (no "format mismatch" is possible here).
"""
from __future__ import annotations

from typing import Any, Optional

from engine.evaluate.generate import Generation
from engine.evaluate.heldout import HeldOutExample, held_out_example
from engine.evaluate.loading import SIDES, LoadedRun, load_run
from engine.evaluate.runfolder import EvaluationError, open_run
from engine.evaluate.settings import GenerationSettings

ROLES = ("system", "user", "assistant")


def check_messages(messages: Any) -> list[dict]:
    """A clean copy of a conversation, or EvaluationError saying which message is wrong."""
    if not isinstance(messages, list) or not messages:
        raise EvaluationError("The conversation is empty: write a message first.")
    clean = []
    for number, message in enumerate(messages, start=1):
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            raise EvaluationError(f"Message {number} of the conversation must have a role (system, user or assistant) "
                                  "and text content.")
        clean.append({"role": message["role"], "content": message["content"]})
    if clean[-1]["role"] != "user":
        raise EvaluationError("The conversation must end with your message (role 'user') for the model to answer.")
    return clean


class ChatModel:
    """A run loaded for chatting: `stream(messages, side, settings, stop_event)` yields the answer as it is written.

    For adapter runs both sides are served by one model object (`shares_weights` is True); for
    full fine-tuning the base model is loaded a second time from its own folder.
    """

    def __init__(self, run_dir, device: Optional[str] = None, weights: Optional[str] = None):
        """`weights`: how the linear layers are stored on a CPU ('auto', 'fp32', 'fp16', 'bf16'; see
        engine.evaluate.chat_weights). 'auto' takes fp16 where fbgemm runs (x86 CPUs), else fp32."""
        from engine.evaluate.chat_weights import chat_weight_format
        from engine.evaluate.loading import pick_device

        self.run = open_run(run_dir)
        self.loaded: LoadedRun = load_run(self.run, device, weights=chat_weight_format(pick_device(device), weights))

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def model(self):
        """The tuned model object (for adapter runs, also the base model with its adapter switched off)."""
        return self.loaded.tuned

    @property
    def shares_weights(self) -> bool:
        return self.loaded.shares_weights

    def _context_limit(self) -> int:
        config = getattr(self.loaded.tuned, "config", None)
        return int(getattr(config, "max_position_embeddings", 0) or 2048)

    def prompt_ids(self, messages: list, max_new_tokens: int = 0) -> list[int]:
        """The conversation as token ids in the training layout, ending with the assistant header.

        When it does not fit the model's context together with the answer, the oldest turns are
        dropped (a system message is kept), as a chat window does.
        """
        from engine.templates import prompt_ids

        messages = check_messages(messages)
        limit = max(16, self._context_limit() - max_new_tokens)
        ids = prompt_ids(messages, self.tokenizer)
        while len(ids) > limit:
            first = 1 if messages[0]["role"] == "system" else 0
            if len(messages) - first <= 1:
                raise EvaluationError(f"The message is too long for this model ({len(ids)} tokens, at most {limit} "
                                      "with room for the answer). Shorten it or lower max new tokens.")
            del messages[first]
            ids = prompt_ids(messages, self.tokenizer)
        return ids

    def stream(self, messages: list, side: str = "tuned", settings: Optional[GenerationSettings] = None,
               stop_event: Any = None):
        """Stream the answer of `side` ("base" or "tuned") to `messages`, piece by piece.

        Returns a Generation: iterate it for text pieces; afterwards it holds token count and timings.
        Setting `stop_event` (threading or multiprocessing Event) ends the answer within one token.
        """
        if side not in SIDES:
            raise EvaluationError(f"Unknown side '{side}': choose 'base' or 'tuned'.")
        settings = settings or GenerationSettings()
        ids = self.prompt_ids(messages, settings.max_new_tokens)
        return _SideGeneration(self.loaded, side, ids, settings, stop_event)

    def reply(self, messages: list, side: str = "tuned", settings: Optional[GenerationSettings] = None) -> str:
        """The whole answer at once (no streaming)."""
        return "".join(self.stream(messages, side, settings))

    def held_out_example(self, index: Optional[int] = None, seed: Optional[int] = None) -> HeldOutExample:
        """A validation example's prompt messages and reference answer ("Try a held-out example")."""
        return held_out_example(self.run, index=index, seed=seed)


class _SideGeneration(Generation):
    """A Generation that switches the adapter off for "base" for exactly as long as it runs."""

    def __init__(self, loaded: LoadedRun, side: str, ids: list[int], settings: GenerationSettings, stop_event: Any):
        self._loaded, self.side = loaded, side
        super().__init__(None, loaded.tokenizer, ids, settings, stop_event)

    def __iter__(self):
        with self._loaded.side(self.side) as model:
            self.model = model
            yield from super().__iter__()
