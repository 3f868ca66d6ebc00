"""What one invocation of the race runs: the workloads, the child processes, and their order.

A `Plan` is a list of rounds; each round runs one process per side in a fixed order, so repeated
rounds alternate the sides (A B A B) and slow drift of the machine hits both equally. Probes
(stop, chat, inspection, window lag) and the lever runs come in a last round.
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from bench.workload import (DEFAULT_DATA, Workload, build_random_from_skeleton, build_random_llama, is_skeleton,
                            write_subsets, write_synthetic_alpaca)

SECTIONS = ("train", "qlora", "levers", "stop", "chat", "inspect", "lag", "big")
CPU_SECTIONS = ("train", "qlora", "levers", "stop", "chat", "inspect", "lag")
GPU_SECTIONS = ("train", "big")

# Each lever of our engine and the setting that switches it off (prediction recorded in BENCHMARKS.md).
# A lever whose setting the engine does not have (yet) prints "not available" instead of a number.
LEVERS: dict[str, tuple[str, str]] = {
    "no compute on padding (packing)": ("training.packing", "false"),
    "bf16 autocast": ("training.precision", "fp32"),
    "logits only where labels are": ("training.label_only_logits", "false"),
    "SDPA attention": ("training.attention", "eager"),
    "threads (one per core -> 1)": ("training.threads", "1"),
}

# On a GPU the levers are the GPU ones (issue 15): each run changes one setting from our default.
# The first three are off by default and switched on here; the ratio reads default / variant.
GPU_LEVERS: dict[str, tuple[str, str]] = {
    "paged 8-bit AdamW (default: AdamW)": ("training.optimizer", "paged_adamw_8bit"),
    "compiled decoder layers (default: off)": ("training.compile", "on"),
    "Liger fused kernels (default: auto = on when installed)": ("training.fused_kernels", "off"),
    "no compute on padding (packing)": ("training.packing", "false"),
    "SDPA attention": ("training.attention", "eager"),
}


def levers_for(mode: str) -> dict[str, tuple[str, str]]:
    return GPU_LEVERS if mode == "gpu" else LEVERS


MODES = {  # per mode: training rows, max length, held-out rows, repeats, chat tokens, inspection rows
    "cpu": {"examples": 32, "max_length": 512, "heldout": 16, "repeats": 2, "chat_tokens": 64, "inspect_rows": 100_000,
            "stop_at_step": 2},
    "quick": {"examples": 24, "max_length": 128, "heldout": 8, "repeats": 1, "chat_tokens": 16, "inspect_rows": 2_000,
              "stop_at_step": 2},
    "gpu": {"examples": 256, "max_length": 512, "heldout": 32, "repeats": 2, "chat_tokens": 64, "inspect_rows": 0,
            "stop_at_step": 4},
}


@dataclass
class Run:
    """One child process: `python -m module [extra_args] JOB RESULT`."""

    label: str
    module: str
    spec: dict
    extra_args: tuple = ()
    # Fills in what is only known once earlier runs ended (e.g. the run folder chat loads).
    complete: Optional[Callable[[dict, dict], dict]] = None

    def spec_for(self, results: dict) -> dict:
        return self.complete(dict(self.spec), results) if self.complete else self.spec


@dataclass
class Plan:
    mode: str
    sections: tuple
    workload: Workload
    rounds: list[list[Run]] = field(default_factory=list)
    levers_unavailable: dict = field(default_factory=dict)  # lever name -> why
    settings: dict = field(default_factory=dict)

    def describe(self) -> str:
        runs = sum(len(r) for r in self.rounds)
        w = self.workload
        return (f"Mode {self.mode}: {w.examples} examples x 1 epoch, max length {w.max_length}, batch {w.batch_size}, "
                f"LoRA r={w.lora_r} on {w.target_modules}, {w.device}; sections {', '.join(self.sections)}; "
                f"{runs} child processes.\nModel: {w.model_dir}"
                + (" (random weights: speed and memory only)" if self.settings.get("random_weights") else ""))

    def meta(self) -> dict:
        return {"mode": self.mode, "sections": list(self.sections), "workload": dataclasses.asdict(self.workload),
                "settings": self.settings, "levers_unavailable": self.levers_unavailable,
                "machine": {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu_count": _cpu_counts()}}


def _cpu_counts() -> dict:
    try:
        import psutil

        return {"logical": psutil.cpu_count(), "physical": psutil.cpu_count(logical=False)}
    except ImportError:
        import os

        return {"logical": os.cpu_count()}


def _parse_sets(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs; a key the engine does not know stops the race before anything runs."""
    sets = dict(pair.split("=", 1) for pair in pairs)
    for key in sets:
        why = missing_setting(key)
        if why:
            raise SystemExit(f"--set {key}: {why}. Settings look like training.packing or method.lora_r "
                             "(see engine/config.py).")
    return sets


def missing_setting(key: str) -> Optional[str]:
    """Why the engine's config cannot take `key`, or None when it can."""
    from engine.config import ConfigError, RunConfig, set_value

    section, _, name = key.partition(".")
    try:
        obj = getattr(RunConfig(), section)
        if name not in {f.name for f in dataclasses.fields(obj)}:
            return f"the engine has no setting {key}"
        set_value(RunConfig(), key, getattr(obj, name))
    except (ConfigError, AttributeError) as exc:
        return str(exc)
    return None


def our_precision(work: Workload) -> str:
    """The precision our engine will train in on this machine (training.precision resolved)."""
    from engine.train.hardware import choose

    import torch

    device = torch.device("cuda" if work.device == "cuda" else "cpu")
    return choose(str(work.overrides.get("training.precision", "auto")), device).precision


def _training_run(label: str, module: str, work: Workload, runs_dir: Path, **spec) -> Run:
    spec = {"workload": dataclasses.asdict(work), "out_dir": str(runs_dir / label), **spec}
    return Run(label=label, module=module, spec=spec)


def _resolve_model(spec: str, workdir: Path) -> tuple[Path, bool]:
    """The model folder and whether its weights are random (a carried skeleton: config + tokenizer only)."""
    if is_skeleton(Path(spec)):
        return build_random_from_skeleton(Path(spec), workdir / f"{Path(spec).name}-random-weights"), True
    from engine.models import resolve_model

    return Path(resolve_model(spec)), False


def build_plan(args, workdir: Path) -> Plan:
    """Prepare the data subsets (and for --gpu the random 1B model) and lay out every run."""
    from bench.rendering import count_tokens, load_tokenizer, render_file

    mode = "gpu" if args.gpu else "quick" if args.quick else "cpu"
    numbers = dict(MODES[mode])
    sections = tuple(filter(None, args.only.split(","))) or (GPU_SECTIONS if args.gpu else CPU_SECTIONS)
    examples = args.examples or numbers["examples"]
    repeats = args.repeats or numbers["repeats"]
    model_dir, random_weights = _resolve_model(args.model, workdir)
    data = Path(args.data) if args.data else DEFAULT_DATA
    train_path, heldout_path = write_subsets(data, examples, workdir / "data", heldout_rows=numbers["heldout"])
    work = Workload(model_dir=str(model_dir), train_path=str(train_path), heldout_path=str(heldout_path),
                    examples=examples, max_length=args.max_length or numbers["max_length"], batch_size=args.batch,
                    lora_r=args.lora_r, lora_alpha=2 * args.lora_r, device="cuda" if args.gpu else "cpu",
                    method="qlora" if args.gpu else "lora", overrides=_parse_sets(args.set))
    tokens = count_tokens(render_file(train_path, load_tokenizer(str(model_dir)), work.max_length)[0])
    precision = our_precision(work)
    plan = Plan(mode=mode, sections=sections, workload=work,
                settings={**numbers, "repeats": repeats, "tokens": tokens, "random_weights": random_weights,
                          "our_precision": precision})
    runs_dir = workdir / "runs"
    ours, base = "bench.side_ours", "bench.baseline_hf"
    train_kind = "qlora" if args.gpu else "lora"
    if "big" in sections:
        big = work.with_changes(model_dir=str(_random_big_model(args, model_dir, workdir)), method="qlora")
        big_tokens = count_tokens(render_file(train_path, load_tokenizer(big.model_dir), big.max_length)[0])

    for number in range(1, repeats + 1):
        first = number == 1  # held-out scoring once is enough: it does not depend on speed
        round_runs = []
        if "train" in sections:
            round_runs += [
                _training_run(f"ours-{train_kind}-{number}", ours, work, runs_dir, score=first, score_base=first,
                              tokens=tokens),
                _training_run(f"baseline-{train_kind}-{number}", base, work, runs_dir, score=first)]
            # The "same precision" baseline adds bf16 autocast only where our engine trains in bf16: on a
            # CPU without native bf16 ours trains in fp32, and a bf16 baseline there would be sandbagged.
            if precision == "bf16" and mode != "quick":
                round_runs.append(_training_run(f"baseline-{train_kind}-bf16-{number}", base, work, runs_dir,
                                                bf16=True, score=first))
        if "qlora" in sections:
            qwork = work.with_changes(method="qlora")
            round_runs += [_training_run(f"ours-qlora-{number}", ours, qwork, runs_dir, score=first, tokens=tokens),
                           _training_run(f"baseline-qlora-{number}", base, qwork, runs_dir, score=first)]
        if "big" in sections:
            round_runs += [_training_run(f"ours-1b-qlora-{number}", ours, big, runs_dir, tokens=big_tokens),
                           _training_run(f"baseline-1b-qlora-{number}", base, big, runs_dir)]
        if round_runs:
            plan.rounds.append(round_runs)
    plan.rounds.append(_last_round(plan, args, workdir, runs_dir, tokens, numbers))
    plan.rounds = [r for r in plan.rounds if r]
    return plan


def _last_round(plan: Plan, args, workdir: Path, runs_dir: Path, tokens: dict, numbers: dict) -> list[Run]:
    """Levers, stop latency, chat, dataset inspection and window lag: one run each."""
    work, sections, runs = plan.workload, plan.sections, []
    ours, base = "bench.side_ours", "bench.baseline_hf"
    if ("levers" in sections or "chat" in sections) and "train" not in sections:
        # The levers are measured against our default run, and chat loads the run it leaves.
        runs.append(_training_run(f"ours-{work.method}-1", ours, work, runs_dir, tokens=tokens))
    if "levers" in sections:
        for name, (key, off) in levers_for(plan.mode).items():
            why = missing_setting(key)
            if why:
                plan.levers_unavailable[name] = why
                continue
            lever_work = work.with_changes(overrides={**work.overrides, key: off})
            runs.append(_training_run(f"lever-off-{key}", ours, lever_work, runs_dir, tokens=tokens))
    if "stop" in sections:
        step = numbers["stop_at_step"]
        stop_work, stop_tokens = work, tokens
        if work.steps < step + 3:  # the stop must land with steps still to go, or the run just completes
            rows = work.batch_size * (step + 3)
            train_path, _ = write_subsets(Path(args.data) if args.data else DEFAULT_DATA, rows, workdir / "data-stop",
                                          heldout_rows=numbers["heldout"])
            stop_work, stop_tokens = work.with_changes(train_path=str(train_path), examples=rows), None
        runs += [_training_run("stop-ours", ours, stop_work, runs_dir, stop_at_step=step, tokens=stop_tokens),
                 _training_run("stop-baseline", base, stop_work, runs_dir, stop_at_step=step)]
    if "chat" in sections:
        chat_spec = {"model_dir": work.model_dir, "max_new_tokens": numbers["chat_tokens"]}
        runs += [Run("chat-ours", "bench.probes", chat_spec, ("chat-ours",), complete=_with_finished_run),
                 Run("chat-baseline", "bench.probes", chat_spec, ("chat-baseline",), complete=_with_finished_run)]
    if "inspect" in sections:
        path = write_synthetic_alpaca(workdir / "data" / f"alpaca-{numbers['inspect_rows']}.json",
                                      numbers["inspect_rows"])
        spec = {"path": str(path), "model_dir": work.model_dir, "max_length": work.max_length,
                "cache_dir": str(workdir / "hf-datasets-cache")}
        runs += [Run("inspect-ours", "bench.probes", spec, ("inspect-ours",)),
                 Run("inspect-baseline", "bench.probes", spec, ("inspect-baseline",))]
    if "lag" in sections:
        runs.append(Run("lag", "bench.probes", {"workload": dataclasses.asdict(work), "out_dir": str(runs_dir / "lag"),
                                                "timeout_s": args.timeout}, ("lag",)))
    return runs


def _with_finished_run(spec: dict, results: dict) -> dict:
    """Chat loads a run our engine finished (the first usable one); both sides use its adapter,
    so the weights are the same and only the serving code differs."""
    for label, items in results.items():
        if label.startswith("ours-") or label == "stop-ours":
            for result in items:
                if result.get("run_dir") and result.get("adapter_dir") and "error" not in result:
                    return {**spec, "run_dir": result["run_dir"], "adapter_dir": result["adapter_dir"]}
    return {**spec, "run_dir": "", "adapter_dir": ""}


def _random_big_model(args, model_dir: Path, workdir: Path) -> Path:
    tokenizer_dir = Path(args.tokenizer_from) if args.tokenizer_from else model_dir
    return build_random_llama(workdir / "llama-1b-random", tokenizer_dir)
