"""A run's plan in practice: gather the plan's inputs, apply it to the config, and price it in seconds.

engine.train.plan decides (a pure function); this module feeds it from the rendered data, the
model's config.json and this machine, writes the decision into the RunConfig (so run.yaml records
`plan: auto` together with the values it resolved to), and turns plan + data into the RunWork that
engine.train.timing prices.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from engine import config as cfg
from engine.train import keep_general as kg
from engine.train import timing
from engine.train.plan import (PREFERENCE_KEEP_GENERAL_NOTE, PREFERENCE_STEP_FLOOR, STEP_FLOOR, Plan, PlanInputs,
                               custom_plan, make_plan, make_preference_plan)

# Tokens of a general prompt as rendered, before its answer (the starter's template with its system turn).
GENERAL_PROMPT_TOKENS = 40


def model_shape(model_dir: Path | str) -> timing.ModelShape:
    """The model's size and width from its config.json (no weights are read)."""
    data = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    data = data.get("text_config", data) if "hidden_size" not in data else data
    return timing.ModelShape.from_config(data)


def machine_memory(device_type: str) -> int:
    """Memory training must fit in: the first GPU's, or the computer's RAM."""
    if device_type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def method_memory(config: cfg.RunConfig, model_dir: Path | str, device_type: str) -> dict:
    """Estimated peak bytes of LoRA, QLoRA and the configured method (engine.train.memory); {} if unknown."""
    from engine.train.memory import estimate_per_method

    try:
        return estimate_per_method(config, model_dir, device_type, ("lora", "qlora", config.method.name))
    except (OSError, ValueError, RuntimeError):
        return {}


def lengths_of(rendered: Sequence) -> tuple[list[int], list[int]]:
    """(tokens, learned tokens) of each rendered example (any object with input_ids and labels);
    a preference pair counts both its answers, which every step computes."""
    from engine.templates import IGNORE_INDEX

    sides = [[r.chosen, r.rejected] if hasattr(r, "chosen") else [r] for r in rendered]
    return ([sum(len(s.input_ids) for s in both) for both in sides],
            [sum(1 for s in both for label in s.labels[1:] if label != IGNORE_INDEX) for both in sides])


def pair_lengths(full_lengths: Sequence[int], pair_answers: Sequence[tuple[int, int]], max_length: int) -> list[int]:
    """Tokens each preference pair trains on, from measured lengths (the window's): the prompt with the chosen
    answer (`full_lengths`, uncut) and the prompt with the rejected one, each cut to `max_length`, as
    `lengths_of` counts the rendered pairs."""
    return [min(full, max_length) + min(full - chosen + rejected, max_length)
            for full, (chosen, rejected) in zip(full_lengths, pair_answers)]


def make_inputs(config: cfg.RunConfig, train: Sequence, val: Sequence, model_dir: Path | str, device_type: str,
                *, gpus: int = 1, memory: Optional[int] = None, per_method: Optional[dict] = None) -> PlanInputs:
    lengths, _ = lengths_of(train)
    val_lengths, _ = lengths_of(val)
    shape = model_shape(model_dir)
    return PlanInputs(examples=len(train), lengths=tuple(lengths), max_length=config.data.max_length,
                      method=config.method.name, model_params=shape.params, device=device_type,
                      memory_bytes=machine_memory(device_type) if memory is None else memory,
                      method_memory=per_method if per_method is not None else method_memory(config, model_dir,
                                                                                            device_type),
                      val_examples=len(val), val_lengths=tuple(val_lengths),
                      curve_tokens=timing.CURVE_TOKENS if (config.training.general_curve and val) else 0,
                      # the keep-general term is a token loss; preference tuning stays close to the base by its own beta
                      keep_general=config.training.keep_general if config.training.objective == "sft" else "off",
                      step_limit=config.training.max_steps, gpus=gpus)


def plan_for(config: cfg.RunConfig, inputs: PlanInputs) -> Plan:
    """training.plan 'auto': the automatic plan (for pairs with dpo and orpo); 'custom': the config's own
    values in the same shape."""
    t = config.training
    preference = t.objective != "sft"
    if t.plan == "auto":
        return make_preference_plan(inputs) if preference else make_plan(inputs)
    plan = custom_plan(inputs, batch_size=t.batch_size, epochs=t.epochs, max_steps=t.max_steps, lr=t.lr,
                       warmup_ratio=t.warmup_ratio, eval_every=t.eval_every, save_every=t.save_every,
                       step_floor=PREFERENCE_STEP_FLOOR if preference else STEP_FLOOR,
                       unit="pairs" if preference else "examples")
    if not preference:
        return plan
    return replace(plan, keep_general=False, general_per_step=0, keep_general_note=PREFERENCE_KEEP_GENERAL_NOTE)


def apply(config: cfg.RunConfig, plan: Plan) -> None:
    """Write an automatic plan's values into the config (training.plan stays 'auto')."""
    if config.training.plan != "auto":
        return
    t = config.training
    config.method.name = plan.method
    t.batch_size, t.max_steps, t.epochs, t.lr = plan.batch_size, plan.steps, plan.epochs, plan.lr
    t.warmup_ratio = round(plan.warmup_ratio, 4)
    t.eval_every, t.save_every = plan.eval_every, plan.save_every


def run_work(plan: Plan, config: cfg.RunConfig, train: Sequence, val: Sequence, device_type: str, *,
             general: Optional[kg.KeepGeneral] = None, answers_to_write: int = 0) -> timing.RunWork:
    """What a run of `plan` on these rendered examples does, for timing.estimate."""
    lengths, learned = lengths_of(train)
    val_lengths, val_learned = lengths_of(val)
    return work_from_lengths(plan, config, device_type, lengths=lengths, learned=learned, val_lengths=val_lengths,
                             val_learned=val_learned, general=general, answers_to_write=answers_to_write)


def work_from_lengths(plan: Plan, config: cfg.RunConfig, device_type: str, *, lengths: Sequence[int],
                      learned: Sequence[int], val_lengths: Sequence[int], val_learned: Sequence[int],
                      general: Optional[kg.KeepGeneral] = None, answers_to_write: int = 0) -> timing.RunWork:
    """The same from token counts alone (the window knows lengths, not rendered examples)."""
    mean = timing.RunWork.mean
    if general is not None:
        g_length, g_learned = general.mean_length(), mean([e.trained_tokens for e in general.examples])
    else:
        g_length, g_learned = GENERAL_PROMPT_TOKENS + kg.ANSWER_TOKENS, float(kg.ANSWER_TOKENS)
    validations = math.ceil(plan.steps / plan.eval_every) if (val_lengths and plan.eval_every) else 0
    return timing.RunWork(steps=plan.steps, batch=plan.batch_size, mean_length=mean(lengths, 1.0),
                          mean_learned=mean(learned, 1.0), max_length=config.data.max_length, device=device_type,
                          validations=validations, val_lengths=val_lengths, val_learned=val_learned,
                          general_per_step=plan.general_per_step if plan.keep_general else 0,
                          general_length=g_length, general_learned=g_learned,
                          general_kl=kg.objective_for(plan.method) == "kl",
                          general_answers_to_write=answers_to_write if plan.keep_general else 0,
                          general_answer_tokens=kg.ANSWER_TOKENS,
                          saves=math.ceil(plan.steps / max(1, plan.save_every)),
                          general_curve=bool(config.training.general_curve and val_lengths),
                          reference_forward=config.training.objective == "dpo")


def answers_missing(model_dir: Path | str, tokenizer) -> int:
    """How many general prompts the base model still has to answer (0 when cached)."""
    prompts = kg.load_prompts()
    return 0 if kg.cache_path(Path(model_dir), tokenizer, prompts).is_file() else len(prompts)


def settings_of(plan: Plan) -> dict:
    """The resolved values a Planned event and plan.json carry."""
    keys = ("method", "batch_size", "steps", "epochs", "lr", "warmup_steps", "eval_every", "save_every",
            "keep_general", "general_per_step")
    data = plan.to_dict()
    return {k: data[k] for k in keys}
