"""The jobs the window's engine helper process does for it, each returning plain data.

Everything here runs inside the helper child (gui.engine_helper starts it, gui.helper_child serves
the requests), never in the window's process: these are the window's only uses of the tokenizer and
of torch. Arguments and results are plain
data (dicts, lists, strings, numbers), so no tensor or tokenizer object ever crosses to the window;
the window's side (gui.views.dataset_jobs, the hardware panel, the model picker) turns them into
what it shows.
"""
from __future__ import annotations

import threading
from typing import Optional

def load_ml_stack() -> None:
    """Import torch and transformers once, on one thread, before any job runs.

    Importing torch from two threads at once can deadlock inside torch's own initialisation; every
    job needs the two anyway, so the helper pays for them at its start.
    """
    import torch  # noqa: F401
    from transformers import AutoTokenizer  # noqa: F401


# One tokenizer per lane thread (see gui.helper_child): loading one takes a second or two, so it is
# kept for the next preview; a fast tokenizer must not encode in two threads at once.
_per_thread = threading.local()


def tokenizer_for(model_dir: str, template: str):
    """The model's tokenizer with its chat template, cached per thread."""
    from engine.templates import load_tokenizer

    cache = _per_thread.__dict__.setdefault("tokenizers", {})
    key = (str(model_dir), template)
    if key not in cache:
        cache[key] = load_tokenizer(model_dir, template=template)
    return cache[key]


def _example(data: dict):
    """An Example (or a PreferencePair) back from its to_dict() form."""
    from engine.data.formats import Example
    from engine.data.preference import PreferencePair, is_pair

    return PreferencePair.from_dict(data) if is_pair(data) else Example.from_dict(data)


def render_preview(example: dict, model_dir: str, template: str, max_length: int, train_on_prompt: bool,
                   completion_separator: str = "") -> dict:
    """One example rendered exactly as training will see it: its pieces, learned or not."""
    from engine.templates import render

    rendered = render(_example(example), tokenizer_for(model_dir, template), max_length=max_length,
                      train_on_prompt=train_on_prompt, completion_separator=completion_separator)
    return {"row": example["row"], "pieces": rendered.pieces(), "tokens": len(rendered.input_ids),
            "truncated": bool(rendered.truncated), "problem": rendered.problem}


def _prompt_and_answer(rendered) -> tuple[str, str, int]:
    """(text before the answer, the answer's learned text, pieces before the answer) of a rendered side."""
    pieces = rendered.pieces()
    first = next((i for i, piece in enumerate(pieces) if piece["trained"]), len(pieces))
    answer = "".join(piece["text"] for piece in pieces[first:] if piece["trained"])
    return "".join(piece["text"] for piece in pieces[:first]), answer, first


def render_pair_preview(pair: dict, model_dir: str, template: str, max_length: int) -> dict:
    """Both sides of a preference pair exactly as preference training will see them."""
    from engine.data.preference_build import render_pair

    pair = _example(pair)
    rendered = render_pair(pair, tokenizer_for(model_dir, template), max_length=max_length)
    prompt, chosen, prompt_tokens = _prompt_and_answer(rendered.chosen)
    _, rejected, _ = _prompt_and_answer(rendered.rejected)
    return {"row": pair.row, "prompt": prompt, "chosen": chosen, "rejected": rejected, "prompt_tokens": prompt_tokens,
            "chosen_tokens": rendered.chosen.trained_tokens, "rejected_tokens": rendered.rejected.trained_tokens,
            "truncated": bool(rendered.truncated), "question": pair.prompt[-1]["content"]}


def token_lengths(examples: list, model_dir: str, template: str, pairs: bool) -> dict:
    """Full token lengths of some examples (before cutting); for preference data also each pair's
    (chosen, rejected) answer tokens. The window sends a large file in chunks, so it can stop early."""
    from engine.data.stats import token_lengths as measure

    tokenizer = tokenizer_for(model_dir, template)
    chunk = [_example(data) for data in examples]
    answer_tokens: list = []
    if pairs:
        from engine.data.preference_build import answer_token_counts

        answer_tokens = [list(counts) for counts in answer_token_counts(chunk, tokenizer)]
    return {"lengths": [int(length) for length in measure(chunk, tokenizer)], "pairs": answer_tokens}


def format_warning(model_dir: str, template: str, data_format: str) -> Optional[str]:
    """What the tokenizer says about the data's layout (a base model given chat data...), or None."""
    from engine.templates import format_mismatch_warning

    return format_mismatch_warning(tokenizer_for(model_dir, template), data_format)


def memory_estimate(config: dict, model_dir: str, device: str) -> dict:
    """Peak memory of the configured method (and of LoRA and QLoRA, which the plan weighs) and the
    trainable weights, from a weightless (meta) model built from config.json: no weights are loaded."""
    from engine import config as cfg
    from engine.train import count_trainable
    from engine.train.memory import estimate_per_method

    run_config = cfg.from_dict(config)
    method = run_config.method.name
    per_method = estimate_per_method(run_config, model_dir, device, (method, "lora", "qlora"))
    trainable, total = count_trainable(run_config, model_dir)
    return {"peak_bytes": int(per_method[method]), "trainable": int(trainable), "total": int(total),
            "per_method": {name: int(peak) for name, peak in per_method.items()}}


def resolve_model(spec: str, progress) -> dict:
    """The chosen model as a Hugging Face folder (preparing the starter or converting a GGUF file once)
    and a short description of it."""
    from engine import models

    folder = models.resolve_model(spec, progress)
    return models.describe(folder).to_dict() | {"folder": str(folder)}


def answers_missing(model_dir: str, template: str) -> int:
    """How many general prompts the base model has yet to answer, by the rule training follows
    (engine.train.autoplan.answers_missing): its cache file is named after the model, the chat template
    and the prompt set, so an answer file left from an older prompt set does not count."""
    from engine.train import autoplan

    return autoplan.answers_missing(model_dir, tokenizer_for(model_dir, template))


resolve_model.reports_progress = True  # gui.helper_child hands it a progress callback

# The jobs the window may ask for, by name: nothing else can be run through the helper.
JOBS = {job.__name__: job for job in (render_preview, render_pair_preview, token_lengths, format_warning,
                                      memory_estimate, resolve_model, answers_missing)}
