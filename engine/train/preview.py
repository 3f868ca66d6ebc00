"""The plan before a run, in words and seconds: `tunesmith-cli train --print-plan` and the window's worker.

Reads and renders the data exactly as training will, makes the plan (engine.train.plan), prices it
with this machine's measured rates (engine.train.calibrate: from the cache, or measured now), and
adds what keeping general ability costs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from engine import config as cfg
from engine.train import autoplan, keep_general, timing
from engine.train.plan import Plan, describe


def keep_general_cost(plan: Plan, estimate: timing.Estimate, shape: timing.ModelShape, general_length: float) -> str:
    """'Keep general ability adds about 1 minute (+20%) and 0.1 GB ...', or '' when it is off."""
    if not plan.keep_general:
        return ""
    without = estimate.total_s - estimate.general_s - estimate.answers_s
    share = 100.0 * estimate.general_s / max(1.0, without)
    memory = keep_general.extra_memory_bytes(plan.general_per_step, general_length, shape.vocab)
    gib = memory / 2**30
    text = (f"Keeping general ability adds {timing.format_duration(estimate.general_s)} (+{share:.0f}%) and "
            + (f"about {gib:.1f} GB of memory" if gib >= 0.1 else "little memory (under 0.1 GB)"))
    if estimate.answers_s:
        text += (f"; this first run with the model also has it answer the general prompts "
                 f"({timing.format_duration(estimate.answers_s)}, once)")
    return text + "."


@dataclass
class Preview:
    """A plan before its run: the plan, its estimate, and what they were made from."""

    plan: Plan
    estimate: timing.Estimate
    shape: timing.ModelShape
    work: timing.RunWork
    rate: timing.Throughput
    train_examples: int
    val_examples: int
    device: str


def make_preview(config: cfg.RunConfig, say: Callable[[str], None] = lambda message: None) -> Preview:
    """Read and render the data as training will, plan, and price the plan on this machine."""
    from engine.data.build import build_data
    from engine.models import resolve_model
    from engine.templates import load_tokenizer
    from engine.train import calibrate, hardware

    config = copy.deepcopy(config)
    hw = hardware.choose(config.training.precision)
    model_dir = resolve_model(config.model.name)
    tokenizer = load_tokenizer(model_dir, config.model.template)
    data = build_data(config, tokenizer)
    plan = autoplan.plan_for(config, autoplan.make_inputs(config, data.train, data.val, model_dir, hw.device.type))
    autoplan.apply(config, plan)
    rate = calibrate.stored_rate(config, model_dir, hw.device.type)
    if rate is None:
        say("Measuring this computer's training speed with this model (once; about half a minute)...")
        rate = calibrate.calibrate(config, model_dir)
    answers = autoplan.answers_missing(model_dir, tokenizer)
    work = autoplan.run_work(plan, config, data.train, data.val, hw.device.type, answers_to_write=answers)
    shape = autoplan.model_shape(model_dir)
    return Preview(plan, timing.estimate(work, shape, rate), shape, work, rate, len(data.train), len(data.val),
                   hw.describe())


def preview_plan(config: cfg.RunConfig, say: Callable[[str], None] = lambda message: None) -> str:
    """The plan for `config` with its time on this machine, as the lines --print-plan prints."""
    p = make_preview(config, say)
    lines = [f"Plan ({config.training.plan}) for {p.train_examples:,} training and {p.val_examples:,} validation "
             f"examples on {p.device}:", describe(p.plan, p.estimate.total_s)]
    cost = keep_general_cost(p.plan, p.estimate, p.shape, p.work.general_length)
    if cost:
        lines.append(cost)
    source = "measured in your last run" if p.rate.source == "measured in a run" else "from a short timed pass"
    lines.append(f"(Time {source}: start-up {timing.format_duration(p.estimate.startup_s)}, training "
                 f"{timing.format_duration(p.estimate.steps_s)}, validation "
                 f"{timing.format_duration(p.estimate.validation_s)}.)")
    return "\n".join(lines)
