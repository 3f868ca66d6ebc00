"""Streaming text generation: token ids in, text pieces out, as soon as each token is decoded.

`transformers`' own generate() does the decoding (KV cache, sampling, repetition penalty); it runs
on a helper thread and hands each new token to a queue, which the caller reads as an iterator.
Stopping is checked before every token, so "Stop generating" takes effect within one token.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator, Optional

from engine.evaluate.settings import GenerationSettings

# End-of-turn markers of common chat templates: generation stops at any of them that the tokenizer knows.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<end_of_turn>",
                      "<|end|>")


def stop_token_ids(tokenizer, model) -> list[int]:
    """Every id that ends an answer: the tokenizer's EOS, the model's, and known end-of-turn markers."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return sorted(ids)


class Generation:
    """An iterator of text pieces for one answer; after it ends, `tokens` (and `token_ids`), `seconds` and
    `first_token_s` say how it went.

    Leaving the loop early (break, close, an exception) stops the generation thread cleanly.
    """

    def __init__(self, model, tokenizer, input_ids: list[int], settings: GenerationSettings,
                 stop_event: Any = None):
        self.model = model
        self.tokenizer = tokenizer
        self.input_ids = list(input_ids)
        self.settings = settings
        self.stop_event = stop_event
        self.tokens = 0
        self.token_ids: list[int] = []
        self.seconds = 0.0
        self.first_token_s: Optional[float] = None
        self.stopped = False  # True when "Stop generating" cut the answer short
        self._cancel = threading.Event()

    def _should_stop(self) -> bool:
        return self._cancel.is_set() or bool(self.stop_event is not None and self.stop_event.is_set())

    def __iter__(self) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        pieces: "queue.Queue[Any]" = queue.Queue()
        generation = self

        class TokenQueue(BaseStreamer):
            """generate() calls put() first with the prompt, then with each new token."""

            prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                pieces.put(value.reshape(-1).tolist())

            def end(self):
                pass

        class StopRequested(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), generation._should_stop(), dtype=torch.bool,
                                  device=input_ids.device)

        settings = self.settings
        device = next(self.model.parameters()).device
        kwargs: dict[str, Any] = dict(
            input_ids=torch.tensor([self.input_ids], device=device),
            attention_mask=torch.ones(1, len(self.input_ids), dtype=torch.long, device=device),
            max_new_tokens=settings.max_new_tokens, do_sample=not settings.greedy,
            repetition_penalty=settings.repetition_penalty, eos_token_id=stop_token_ids(self.tokenizer, self.model),
            pad_token_id=self.tokenizer.pad_token_id, streamer=TokenQueue(),
            stopping_criteria=StoppingCriteriaList([StopRequested()]))
        if not settings.greedy:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        else:  # the model's own defaults may ask for sampling; greedy must not sample
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def work():
            try:
                torch.manual_seed(settings.seed)
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except Exception as exc:  # handed to the reading side, which re-raises it there
                pieces.put(exc)
            finally:
                pieces.put(None)

        start = time.perf_counter()
        thread = threading.Thread(target=work, name="tunesmith-generate", daemon=True)
        thread.start()
        text = TextStream(self.tokenizer)
        try:
            while True:
                item = pieces.get()
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise item
                if self.first_token_s is None:
                    self.first_token_s = time.perf_counter() - start
                self.token_ids.extend(item)
                self.tokens = len(self.token_ids)
                piece = text.add(item)
                if piece:
                    yield piece
            rest = text.finish()
            if rest:
                yield rest
        finally:
            self.stopped = self._should_stop() and not self._cancel.is_set()
            self._cancel.set()
            thread.join()
            self.seconds = time.perf_counter() - start


class TextStream:
    """Token ids in, new text out, without decoding the whole answer again for every token.

    Fast tokenizers use the tokenizers library's DecodeStream, which keeps only the last few tokens
    and holds back a character split across tokens until its last byte arrives. Tokenizers without a
    Rust backend decode the answer so far at each token (same text, special tokens skipped either way).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._stream = None
        if backend is not None:
            from tokenizers.decoders import DecodeStream

            self._backend, self._stream = backend, DecodeStream(skip_special_tokens=True)
        self._ids: list[int] = []
        self._shown = ""

    def add(self, ids: list[int]) -> str:
        """The text that `ids` (the next tokens) complete; "" while a character is still partial."""
        if self._stream is not None:
            return "".join(piece for piece in (self._stream.step(self._backend, int(i)) for i in ids) if piece)
        self._ids.extend(ids)
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        # A character split across tokens decodes as U+FFFD until its last byte arrives: wait for it.
        if text.endswith("\ufffd") or len(text) <= len(self._shown) or not text.startswith(self._shown):
            return ""
        piece, self._shown = text[len(self._shown):], text
        return piece

    def finish(self) -> str:
        """Whatever is left once the answer has ended (a trailing partial character, decoded as it is)."""
        if self._stream is not None or not self._ids:
            return ""
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        return text[len(self._shown):] if text.startswith(self._shown) else ""


def generate_batch(model, tokenizer, prompts: list[list[int]], settings: GenerationSettings, stop: Any = None,
                   batch_size: int = 8, on_batch: Optional[Any] = None) -> list[str]:
    """Answers to many prompts (token ids) at once, without streaming; for evaluation, where order matters
    and speed does: one batched decode step costs far less than one step per prompt.

    Prompts are left-padded so every answer starts right after its own prompt. `on_batch(n)` is
    called after each batch with the number of answers it produced. Stops early (returning fewer
    answers) when `stop` is set.
    """
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, model)
    options: dict[str, Any] = dict(max_new_tokens=settings.max_new_tokens, do_sample=not settings.greedy,
                                   repetition_penalty=settings.repetition_penalty, eos_token_id=stops,
                                   pad_token_id=pad)
    if settings.greedy:
        options.update(temperature=None, top_p=None, top_k=None)
    else:
        options.update(temperature=settings.temperature, top_p=settings.top_p)
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        if stop is not None and stop.is_set():
            break
        batch = prompts[start:start + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        torch.manual_seed(settings.seed)
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=mask, **options)
        for row in output[:, width:].tolist():
            answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
        if on_batch:
            on_batch(len(batch))
    return answers
