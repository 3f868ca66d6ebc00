"""Our side of the race: `engine.train.run_training` on the workload, in its own process.

The engine is driven exactly as the CLI and the window drive it (a RunConfig, a sink, a stop
event); the sink stamps each event as it arrives, which gives the step clock, the first loss
and the stop latency without touching the engine's code.
"""
from __future__ import annotations

import copy
import json
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.child import StepClock, gpu_peak_mb, peak_rss_mb, run_child, spawned_at, throughput  # noqa: E402
from bench.workload import Workload  # noqa: E402

NO_EVAL = 10**6  # the largest eval_every/save_every the config accepts: no validation pauses in the window


def build_config(work: Workload, run_dir: str):
    """The engine's RunConfig for the workload; `work.overrides` (levers) are applied last, like --set."""
    from engine.config import RunConfig, set_value, validate

    config = RunConfig()
    config.model.name = work.model_dir
    config.data.path = work.train_path
    config.data.val_path = work.heldout_path  # so no training row is held out: both sides learn the same rows
    config.data.test_fraction = 0.0
    config.data.max_length = work.max_length
    config.data.seed = work.seed
    config.method.name = work.method
    config.method.lora_r = work.lora_r
    config.method.lora_alpha = work.lora_alpha
    config.method.lora_dropout = work.lora_dropout
    config.method.target_modules = work.target_modules
    training = config.training
    training.plan = "custom"  # the race compares fixed settings, not the automatic plan
    training.keep_general = "off"
    training.epochs = 1.0
    training.batch_size = work.batch_size
    training.lr = work.lr
    training.warmup_ratio = work.warmup_ratio
    training.scheduler = work.scheduler
    training.max_grad_norm = work.max_grad_norm
    training.seed = work.seed
    training.eval_every = NO_EVAL
    training.save_every = NO_EVAL
    training.early_stopping_patience = 0
    config.out = run_dir
    for key, value in work.overrides.items():
        set_value(config, key, value, source="bench lever")
    validate(config)
    return config


def predicted_memory(config, work: Workload) -> dict:
    """The Method view's estimate for this config, if the engine offers one (engine.train.estimate_memory)."""
    try:
        from engine.train import estimate_memory
    except ImportError:
        return {"error": "engine.train.estimate_memory is not available"}
    try:
        estimate = estimate_memory(config, work.model_dir, work.device)
    except Exception as exc:  # the row says why instead of stopping the race
        return {"error": f"estimate_memory failed: {type(exc).__name__}: {exc}"}
    if isinstance(estimate, (int, float)):
        return {"bytes": float(estimate)}
    if isinstance(estimate, dict):
        return {"raw": estimate}
    as_dict = getattr(estimate, "to_dict", None)
    return {"raw": as_dict() if as_dict else str(estimate)}


def train(work: Workload, run_dir: str, stop_at_step: int = 0, tokens: dict | None = None) -> dict:
    """Run the engine once; returns timings, losses, peak memory and the run's final event.

    tokens: the workload's token totals (bench.rendering.count_tokens), counted by the parent so
    this process does no extra work; counted here after the run when not given.
    """
    from engine.train import run_training

    started = spawned_at()
    config = build_config(work, run_dir)
    as_planned = copy.deepcopy(config)  # what the Method view would estimate, whatever the run changes
    clock = StepClock()
    marks: dict[str, float] = {}
    events: list[dict] = []
    stop = threading.Event()

    def request_stop() -> None:
        marks.setdefault("stop_requested", time.time())
        stop.set()

    def sink(event) -> None:
        now = time.time()
        kind = type(event).__name__
        events.append({"type": kind, "t": now, "message": getattr(event, "message", None)})
        if kind == "Started":
            marks.setdefault("started", now)
            clock.begin(now)
        step = getattr(event, "step", None)
        if kind == "FirstLoss":
            marks.setdefault("first_loss", now)
        elif kind == "TrainMetric":
            clock.loss(step, event.loss, now)
            marks["engine_tokens_per_s"] = event.tokens_per_s  # the last one: past the warm-up
        elif kind == "Progress" and step:
            clock.step(step, now)
        if stop_at_step and step == stop_at_step and "stop_timer" not in marks:
            # Ask half a step later, from another thread, as the window's Stop button would.
            marks["stop_timer"] = now
            threading.Timer((clock.last_step_s() or 0.0) / 2, request_stop).start()

    final = run_training(config, sink, stop)
    returned = time.time()
    final_dict = final.to_dict() if hasattr(final, "to_dict") else {"type": type(final).__name__}
    if final_dict.get("type") == "Failed":
        raise RuntimeError(f"the engine's run failed: {final_dict.get('reason')} {final_dict.get('hint', '')}")
    peak_rss, gpu_peak = peak_rss_mb(), gpu_peak_mb()  # before anything else is loaded here
    estimate = predicted_memory(as_planned, work)  # after the run, so its own work is in no timing or peak
    if tokens is None:
        from bench.rendering import count_tokens, load_tokenizer, render_file

        tokens = count_tokens(render_file(work.train_path, load_tokenizer(work.model_dir), work.max_length)[0])
    loaded = marks.get("started", started)
    first_loss = marks.get("first_loss", clock.first_loss_time())
    output_path = final_dict.get("output_path") or str(Path(run_dir) / "adapter")
    result = {
        "side": "ours", "adapter_dir": output_path, "run_dir": run_dir,
        "overrides": work.overrides, "tokens": tokens, "steps_total": work.steps,
        "steps_done": max(clock.step_times, default=0),
        "throughput": throughput(clock.step_times, work.steps, tokens["tokens"], work.warmup_steps_excluded),
        "label_throughput": throughput(clock.step_times, work.steps, tokens["label_tokens"],
                                       work.warmup_steps_excluded),
        "engine_reported_tokens_per_s": marks.get("engine_tokens_per_s"),
        "load_s": loaded - started,
        "first_loss_s": None if first_loss is None else first_loss - started,
        "first_loss_after_load_s": None if first_loss is None else first_loss - loaded,
        "median_step_s": clock.median_step_s(), "tail_train_loss": clock.tail_loss(),
        "losses": [(s, loss) for s, loss, _ in clock.losses], "total_s": returned - started,
        "peak_rss_mb": peak_rss, "gpu_peak_mb": gpu_peak, "memory_estimate": estimate,
        "final_event": final_dict, "event_counts": _count_types(events),
        "notices": [e["message"] for e in events if e["type"] == "Notice"][:12],  # e.g. what 'auto' chose
    }
    if stop_at_step:
        requested = marks.get("stop_requested")
        result["stop"] = {"requested_at_step": stop_at_step, "reason": final_dict.get("reason"),
                          "latency_s": None if requested is None else returned - requested,
                          "adapter_ok": (Path(output_path) / "adapter_config.json").is_file()}
    return result


def _count_types(events: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for event in events:
        counts[event["type"]] = counts.get(event["type"], 0) + 1
    return counts


def child_job(spec: dict) -> dict:
    """The race's entry: spec = {"workload": ..., "out_dir": str, "score": bool, "stop_at_step": int}."""
    work = Workload.from_json(json.dumps(spec["workload"]))
    try:
        from engine.train import run_training  # noqa: F401  (only to tell "not built yet" apart from a failure)
    except ImportError as exc:
        return {"unavailable": f"engine.train.run_training is not available yet ({exc})"}
    result = train(work, str(Path(spec["out_dir"]) / "run"), stop_at_step=spec.get("stop_at_step", 0),
                   tokens=spec.get("tokens"))
    if result.get("stop") and result["stop"]["adapter_ok"]:
        from bench.score import adapter_usable

        result["stop"].update(adapter_usable(work.model_dir, result["adapter_dir"]))
        result["stop"]["adapter_ok"] = result["stop"]["usable"]
    if spec.get("score"):
        from bench.score import heldout_loss

        result["score"] = heldout_loss(work.model_dir, result["adapter_dir"], work.heldout_path, work.max_length,
                                       work.device, include_base=spec.get("score_base", False))
    return result


if __name__ == "__main__":
    run_child(child_job)
