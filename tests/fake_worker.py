"""Worker entry points for tests: they replay a script instead of loading a model.

Run through gui.process_host.ProcessHost exactly like the engine's workers, e.g.
`ProcessHost("tests.fake_worker:replay_main", args=(script,))`. A script is a list of steps:

    ("event", Event)        put the event on the queue
    ("sleep", seconds)      wait (returns early when Stop is pressed)
    ("print", text)         write a line to stdout (the log pane and the log tail show it)
    ("until_stop", Event)   wait until Stop is pressed, then put the event
    ("raise", message)      raise RuntimeError(message) (the child_entry turns it into Failed)
    ("exit", code)          end the process at once with this exit code (no clean-up, like a crash)
    ("kill_self", None)     SIGKILL itself, as the out-of-memory killer would
    ("abort", None)         os.abort(): a crash in native code (SIGABRT, like a segfault)
    ("ignore_stop", secs)   keep running for `secs` even after Stop (to test terminate/kill)
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path

from engine.events import CheckpointSaved, Failed, Finished, GenerationDone, Notice, Progress, Token


def replay_main(script, queue, stop_event) -> None:
    """Replay `script` (see the module docstring) on `queue`."""
    for kind, value in script:
        if kind == "event":
            queue.put(value)
        elif kind == "sleep":
            stop_event.wait(value)
        elif kind == "print":
            print(value, flush=True)
        elif kind == "until_stop":
            stop_event.wait(60)
            queue.put(value)
            return
        elif kind == "raise":
            raise RuntimeError(value)
        elif kind == "exit":
            sys.stdout.flush()
            os._exit(value)
        elif kind == "kill_self":
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "abort":
            sys.stdout.flush()
            os.abort()
        elif kind == "ignore_stop":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL can end it now
            time.sleep(value)
        else:
            raise ValueError(f"unknown script step {kind!r}")


SCRIPT_ENV = "TUNESMITH_FAKE_SCRIPT"


class _RecordingQueue:
    """Puts events on the real queue and appends them to the run's metrics.jsonl, as the engine does."""

    def __init__(self, queue, run_dir: Path):
        self.queue, self.run_dir = queue, run_dir

    def put(self, event) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(event.to_json() + "\n")
        if isinstance(event, CheckpointSaved):  # a complete checkpoint has its state.json (weights are not read)
            Path(event.path).mkdir(parents=True, exist_ok=True)
            (Path(event.path) / "state.json").write_text(json.dumps({"step": event.step}), encoding="utf-8")
        if isinstance(event, (Finished, Failed)):
            info_path = self.run_dir / "run-info.json"
            info = json.loads(info_path.read_text(encoding="utf-8"))
            info["status"] = event.reason if isinstance(event, Finished) else "failed"
            info["best_step"] = getattr(event, "best_step", None)
            if isinstance(event, Finished):
                (self.run_dir / "adapter").mkdir(exist_ok=True)
                (self.run_dir / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
            info_path.write_text(json.dumps(info), encoding="utf-8")
        self.queue.put(event)


def fake_train_main(config_dict, queue, stop_event, resume_from=None) -> None:
    """Stands in for engine.worker.train_main: makes a run folder at config 'out', then replays the
    script pickled at $TUNESMITH_FAKE_SCRIPT (CheckpointSaved events create their folders)."""
    with open(os.environ[SCRIPT_ENV], "rb") as fh:
        script = pickle.load(fh)
    run_dir = Path(config_dict["out"])
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"base_model_path": config_dict["model"]["name"], "method": config_dict["method"]["name"],
            "template": "chatml", "status": "running", "best_step": None, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "resumed_from": resume_from}
    (run_dir / "run-info.json").write_text(json.dumps(info), encoding="utf-8")
    replay_main(script, _RecordingQueue(queue, run_dir), stop_event)


def fake_chat_main(run_dir, request_queue, event_queue, stop_event=None) -> None:
    """Speaks engine.evaluate.worker.chat_main's protocol without a model: each side answers
    "<side> heard: <the last user message>" one word at a time (20 ms apart), stoppable."""
    import queue as queue_module

    event_queue.put(Notice(message=f"ready: {Path(run_dir).name} on cpu (fake)"))
    pending = []
    while True:
        request = pending.pop(0) if pending else request_queue.get()
        if request is None or request.get("type") == "quit":
            return
        if request.get("type") == "stop":
            continue
        last_user = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
        if last_user == "please fail":
            event_queue.put(Failed(reason="The message is too long for this model."))
            continue
        for side in request.get("sides", ["tuned"]):
            words = f"{side} heard: {last_user} (turn {len(request['messages']) // 2 + 1})".split()
            sent, stopped = 0, False
            for word in words:
                try:
                    message = request_queue.get_nowait()
                    if message is None or message.get("type") in ("stop", "quit"):
                        stopped = True
                        if message is None or message.get("type") == "quit":
                            pending.append({"type": "quit"})
                    else:
                        pending.append(message)
                        stopped = True
                except queue_module.Empty:
                    pass
                if stopped:
                    break
                event_queue.put(Token(request=request["request"], side=side, text=word + " "))
                sent += 1
                time.sleep(0.02)
            event_queue.put(GenerationDone(request=request["request"], side=side, tokens=sent, seconds=0.02 * sent))
            if stopped:
                break


def _task(task: str, title: str, chance: float, base: float, tuned: float, fell: bool) -> dict:
    return {"task": task, "title": title, "kind": "knowledge", "items": 60, "chance": chance,
            "base": {"accuracy": base, "ci": [round(base - 0.12, 3), round(base + 0.11, 3)]},
            "tuned": {"accuracy": tuned, "ci": [round(tuned - 0.12, 3), round(tuned + 0.11, 3)]},
            "difference": {"value": round(tuned - base, 3), "ci": [round(tuned - base - 0.1, 3),
                                                                    round(tuned - base + 0.08, 3)]}, "fell": fell}


FAKE_GENERAL_ABILITY = {
    "benchmark": "Tunesmith general ability v1 (full, 180 questions)", "version": "1", "size": "full", "items": 180,
    "chance": 0.31, "base": {"accuracy": 0.55, "ci": [0.477, 0.621]}, "tuned": {"accuracy": 0.44, "ci": [0.37, 0.513]},
    "difference": {"value": -0.111, "ci": [-0.172, -0.05], "gained": 4, "lost": 24},
    "per_task": [_task("arc_easy", "ARC-Easy: grade-school science", 0.25, 0.6, 0.38, True),
                 _task("hellaswag", "HellaSwag: how an everyday scene goes on", 0.25, 0.45, 0.4, False),
                 _task("bb_arithmetic", "BIG-bench arithmetic (one digit)", 0.43, 0.6, 0.55, False)],
    "verdict": "forgot", "tasks_fell": ["arc_easy"], "kept": 0.8,
    "headline": "Forgot: general ability fell beyond noise (most on ARC-Easy).",
    "summary": "Forgot: the tuned model lost general ability, more than chance explains (base 55.0% -> tuned 44.0% "
               "right on 180 benchmark questions; difference -11.1 points (95% interval -17.2 to -5.0)). It fell on: "
               "ARC-Easy: grade-school science (-22.0).",
    "advice": ["Lower the learning rate (training.lr), e.g. halve it."], "method": "log-likelihood"}


def fake_eval_main(run_dir, event_queue, stop_event=None, options=None) -> None:
    """Speaks engine.evaluate.worker.eval_main's protocol: progress, then RUN/eval/results.json."""
    event_queue.put(Notice(message="Measuring test loss (base model)..."))
    for step in range(1, 6):
        if stop_event is not None and stop_event.is_set():
            event_queue.put(Finished(run_dir=run_dir, output_path="", reason="stopped", step=0))
            return
        event_queue.put(Progress(step=step, total_steps=5, epoch=0.0, elapsed_s=step * 0.05, eta_s=None))
        time.sleep(0.05)
    results = {"run_dir": run_dir, "device": "cpu", "val_examples": 4, "created": "2026-11-22 20:00:00",
               "heldout": {"part": "test", "examples": 4, "file": "test.jsonl", "note": None},
               "base": {"val_loss": 2.5, "perplexity": 12.18, "exact_match": 0.0, "chrf": 20.0, "rouge_l": 15.0,
                        "probe_accuracy": 0.8},
               "tuned": {"val_loss": 1.5, "perplexity": 4.48, "exact_match": 0.5, "chrf": 55.0, "rouge_l": 48.0,
                         "probe_accuracy": 0.76},
               "general_ability_kept": 0.8,
               "general_ability": FAKE_GENERAL_ABILITY}
    if (options or {}).get("old_layout"):  # a run evaluated before the benchmark existed
        del results["general_ability"]
        results["forgetting"] = {"general_ability_kept": 0.95, "verdict": "General ability kept: 95%. The tuned "
                                 "model still knows what the base model knew."}
    (Path(run_dir) / "eval").mkdir(exist_ok=True)
    (Path(run_dir) / "eval" / "results.json").write_text(json.dumps(results), encoding="utf-8")
    event_queue.put(Finished(run_dir=run_dir, output_path=f"{run_dir}/eval/results.json", reason="completed", step=0))


def report_priority(path, queue, stop_event) -> None:
    """Write this process's nice value to `path` (to check background workers are niced)."""
    Path(path).write_text(str(os.nice(0)), encoding="utf-8")


FAKE_RATE = {"train_s_per_flop": 2e-11, "eval_s_per_flop": 7e-12, "pass_s": 0.05, "step_s": 0.01, "startup_s": 9.0,
             "decode_step_s": 0.05, "source": "calibrated"}


def calibrate_main(config_dict: dict, queue, stop_event=None) -> None:
    """Stands in for engine.worker:calibrate_main: stores FAKE_RATE as this machine's rates, then Finished."""
    from engine import config as cfg
    from engine import paths
    from engine.models import resolve_model
    from engine.train import timing

    config = cfg.from_dict(config_dict)
    key = timing.throughput_key(config, str(resolve_model(config.model.name)), "cpu")
    timing.save_throughput(paths.data_dir(), key, timing.Throughput.from_dict(FAKE_RATE))
    queue.put(Finished(run_dir="", output_path="", reason="completed", step=0))
