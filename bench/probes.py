"""The race's measurements besides training speed: chat, dataset inspection, window lag.

Each `*_job(spec) -> dict` runs in its own fresh process (`python -m bench.probes KIND JOB RESULT`)
so one probe's warm caches never help another. A piece of Tunesmith that is not built yet gives
{"unavailable": why} and its row prints "not available" instead of a number.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.child import run_child, spawned_at  # noqa: E402

CHAT_PROMPT = [{"role": "user", "content": "Describe how to make a cup of tea, step by step, in detail."}]


def _timed_stream(pieces) -> dict:
    """Time to the first text piece and the whole stream of an iterator of text pieces."""
    start = time.perf_counter()
    first, text = None, []
    for piece in pieces:
        if first is None and piece:
            first = time.perf_counter() - start
        text.append(piece)
    return {"first_token_s": first, "total_s": time.perf_counter() - start, "text": "".join(text)}


def _decode_rate(timing: dict, tokens: int) -> float | None:
    """Tokens per second after the first one (the prompt's prefill is in the first token's time)."""
    if timing["first_token_s"] is None or tokens < 2:
        return None
    seconds = timing["total_s"] - timing["first_token_s"]
    return (tokens - 1) / seconds if seconds > 0 else None


def chat_ours_job(spec: dict) -> dict:
    """engine.evaluate.chat.ChatModel on a finished run: cold and warm first-token time, decode rate."""
    try:
        from engine.evaluate.chat import ChatModel
        from engine.evaluate.settings import GenerationSettings
    except ImportError as exc:
        return {"unavailable": f"engine.evaluate.chat is not available ({exc})"}
    if not spec.get("run_dir"):
        return {"unavailable": "no finished run of our engine to chat with (its training rows failed)"}
    started = spawned_at()
    chat = ChatModel(spec["run_dir"])
    loaded = time.time()
    settings = GenerationSettings(max_new_tokens=spec["max_new_tokens"], temperature=0.0)
    results = []
    for _ in range(2):  # the first answer after loading (what the user feels), then a warm one
        generation = chat.stream(CHAT_PROMPT, side="tuned", settings=settings)
        timing = _timed_stream(generation)
        timing["tokens"] = generation.tokens
        timing["decode_tokens_per_s"] = _decode_rate(timing, generation.tokens)
        results.append(timing)
    return {"load_s": loaded - started, "cold": results[0], "warm": results[1]}


def chat_baseline_job(spec: dict) -> dict:
    """Plain transformers: base model + PEFT adapter, `generate` streaming through TextIteratorStreamer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    if not spec.get("adapter_dir"):
        return {"unavailable": "no adapter to chat with (our engine's training rows failed)"}
    started = spawned_at()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    model = PeftModel.from_pretrained(model, spec["adapter_dir"]).eval()
    loaded = time.time()
    inputs = tokenizer.apply_chat_template(CHAT_PROMPT, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    results = []
    for _ in range(2):
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        output: dict = {}

        def generate() -> None:
            with torch.no_grad():
                output["ids"] = model.generate(**inputs, max_new_tokens=spec["max_new_tokens"], do_sample=False,
                                               streamer=streamer)

        worker = threading.Thread(target=generate)
        worker.start()
        timing = _timed_stream(streamer)
        worker.join()
        tokens = int(output["ids"].shape[-1] - inputs["input_ids"].shape[-1])
        timing["tokens"] = tokens
        timing["decode_tokens_per_s"] = _decode_rate(timing, tokens)
        results.append(timing)
    return {"load_s": loaded - started, "cold": results[0], "warm": results[1]}


def inspect_ours_job(spec: dict) -> dict:
    """engine.data.inspect.inspect_file plus the token statistics the Dataset view shows."""
    try:
        from engine.data.inspect import inspect_file
    except ImportError as exc:
        return {"unavailable": f"engine.data.inspect is not available ({exc})"}
    start = time.perf_counter()
    report = inspect_file(spec["path"])
    inspected = time.perf_counter()
    stats = _token_stats(report, spec["model_dir"], spec["max_length"])
    done = time.perf_counter()
    return {"rows_valid": report.rows_valid, "inspect_s": inspected - start,
            "stats_s": None if stats is None else done - inspected,
            "total_s": None if stats is None else done - start,
            "stats": stats if isinstance(stats, dict) else None,
            "stats_unavailable": "engine.data.stats is not available" if stats is None else None}


def _token_stats(report, model_dir: str, max_length: int):
    """Call engine.data.stats on the report's examples; None when that module is not built."""
    try:
        from engine.data import stats as stats_module
    except ImportError:
        return None
    from engine.templates import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    for name in ("token_stats", "compute_token_stats", "dataset_stats", "compute_stats"):
        func = getattr(stats_module, name, None)
        if callable(func):
            result = func(report.examples, tokenizer, max_length=max_length)
            as_dict = getattr(result, "to_dict", None)
            summary = as_dict() if as_dict else {"result": str(result)[:200]}
            return {k: v for k, v in summary.items() if not isinstance(v, list)}  # row lists bloat the JSON
    return None


def inspect_baseline_job(spec: dict) -> dict:
    """The plain Hugging Face way: `datasets.load_dataset('json')`, then batched tokenization for lengths."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    start = time.perf_counter()
    data = load_dataset("json", data_files=spec["path"], split="train", cache_dir=spec["cache_dir"])
    loaded = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])

    def lengths(batch):
        texts = [f"{i}\n\n{x}\n{o}" for i, x, o in zip(batch["instruction"], batch["input"], batch["output"])]
        return {"length": [len(ids) for ids in tokenizer(texts)["input_ids"]]}

    counted = data.map(lengths, batched=True, remove_columns=data.column_names)
    done = time.perf_counter()
    return {"rows_valid": len(counted), "inspect_s": loaded - start, "stats_s": done - loaded,
            "total_s": done - start}


def lag_job(spec: dict) -> dict:
    """The Training tab with a real training run, while gui.lag_probe.LagProbe watches its event loop."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from PySide6.QtWidgets import QApplication

        from gui.controller import Controller
        from gui.lag_probe import LagProbe
        from gui.views.training_view import TrainingView
    except ImportError as exc:
        return {"unavailable": f"the window's lag probe or Training tab is not available ({exc})"}
    from PySide6.QtCore import QTimer

    from bench.side_ours import build_config
    from bench.workload import Workload

    work = Workload.from_json(json.dumps(spec["workload"]))
    config = build_config(work, spec["out_dir"])
    app = QApplication.instance() or QApplication([])
    view = TrainingView(Controller(config))
    view.resize(1200, 800)
    view.show()
    probe = LagProbe()
    outcome: dict = {}

    def ended(event) -> None:
        outcome["event"] = type(event).__name__
        outcome["reason"] = getattr(event, "reason", None)
        app.quit()

    view.trainingEnded.connect(ended)
    probe.start()
    if not view.start_training():
        return {"error": "the Training tab refused to start the run (see its message)"}
    # A dialog the tab might open would wait for a click forever; the deadline ends the probe instead.
    QTimer.singleShot(int(spec["timeout_s"] * 1000), lambda: (outcome.setdefault("event", "timeout"), app.quit()))
    app.exec()
    probe.stop()
    if view.host is not None:  # timed out: end the training worker rather than leave it running
        view.host.kill_now()
        view.host.wait(15000)
    return {**probe.report(), "run": outcome}


JOBS = {"chat-ours": chat_ours_job, "chat-baseline": chat_baseline_job, "inspect-ours": inspect_ours_job,
        "inspect-baseline": inspect_baseline_job, "lag": lag_job}

if __name__ == "__main__":
    kind = sys.argv.pop(1)
    run_child(JOBS[kind])
