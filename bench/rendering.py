"""Turn alpaca rows into (input_ids, labels) exactly once, for the baseline and for token counting.

Both sides must learn the same tokens for their losses to be comparable, so the baseline uses
the engine's own renderer (`engine.templates.render`, assistant-only labels) when it exists. A
plain `apply_chat_template` fallback (the way the transformers docs mask prompts) keeps the
baseline runnable on its own; which one was used is reported with every result.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IGNORE = -100


def alpaca_to_messages(row: dict) -> list[dict]:
    """One alpaca row as a user turn and an assistant turn (the input, if any, follows the instruction)."""
    prompt = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]


def _engine_renderer():
    """The engine's renderer and loader if they are built, else None."""
    try:
        from engine.data.formats import Example
        from engine.templates import load_tokenizer, render
    except ImportError:
        return None
    return Example, load_tokenizer, render


def load_tokenizer(model_dir: str) -> Any:
    """The tokenizer both sides use: the engine's loader (same chat template) when it exists."""
    engine = _engine_renderer()
    if engine is not None:
        return engine[1](model_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _render_plain(messages: list[dict], tokenizer, max_length: int) -> dict:
    """Prompt tokens masked with -100, answer tokens learned; cut at max_length."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    full = list(full)[:max_length]
    cut = min(len(prompt), len(full))
    return {"input_ids": full, "labels": [IGNORE] * cut + full[cut:]}


def _conversations(path: Path) -> tuple[list[list[dict]], str]:
    """The file's rows as conversations: through the engine's reader when it exists (same
    alpaca-to-messages rule as training), else the plain rule above."""
    try:
        from engine.data.inspect import inspect_file
    except ImportError:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
        return [alpaca_to_messages(row) for row in rows], "bench.rendering.alpaca_to_messages"
    report = inspect_file(path)
    return [example.messages for example in report.examples], "engine.data.inspect"


def render_file(path: str | Path, tokenizer, max_length: int) -> tuple[list[dict], str]:
    """Read and render every row of an alpaca file; returns the rows and how they were rendered."""
    conversations, reader = _conversations(Path(path))
    engine = _engine_renderer()
    rendered = []
    if engine is not None:
        example_cls, _, render = engine
        for number, messages in enumerate(conversations, start=1):
            result = render(example_cls(row=number, messages=messages), tokenizer, max_length=max_length)
            rendered.append({"input_ids": list(result.input_ids), "labels": list(result.labels)})
        return rendered, f"{reader} + engine.templates.render"
    for messages in conversations:
        rendered.append(_render_plain(messages, tokenizer, max_length))
    return rendered, f"{reader} + tokenizer.apply_chat_template"


def count_tokens(rendered: list[dict]) -> dict:
    """Token totals of a rendered set: `tokens` (all non-padding) and `label_tokens` (learned)."""
    return {"tokens": sum(len(r["input_ids"]) for r in rendered),
            "label_tokens": sum(sum(1 for x in r["labels"] if x != IGNORE) for r in rendered),
            "rows": len(rendered)}
