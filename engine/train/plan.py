"""The training plan (`training.plan: auto`): how many steps of how many examples, at which rate.

A pure function of what is known before training starts: the number of usable examples and their
token lengths, the method, the model's size and the hardware. It never imports torch or reads a
file, so the window can call it on every change. What it returns also says, in one or two plain
sentences, why; and it recommends a method from the memory estimate (engine.train.memory).

The numbers below were measured on the starter model (SmolLM2-135M-Instruct, LoRA r=16, CPU) with
`bench/plan_floor.py`; see BENCHMARKS.md, "The training plan".
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional, Sequence

# The fewest optimizer steps that teach a small data set anything. Measured (bench/plan_floor.py,
# 16 rows all answered with one invented string, LoRA 2e-4, starter model): at 16 and 24 steps the
# model had not learned it (batch 1, 4 or 8), from 32 steps on it had (batch 1, 4 and 8 alike); 64
# leaves a margin for data less uniform than one repeated answer. What counts is the number of
# optimizer steps, not the examples per step.
STEP_FLOOR = 64
# One pass over the data, or the floor if that is more. Measured on the sample orders (480 training
# rows): half a pass (60 steps of 4) already gave valid JSON on every held-out order and 99% of the
# fields right, the same as 60 steps of 8; more passes only cost time and general ability (the
# seeds: with fewer than ~500 examples a model memorises easily).
PASSES = 1.0
# ... except that a small set (under ONE_PASS_EXAMPLES rows) is gone over until the run has trained on
# about PASS_TOKENS tokens, at most MAX_PASSES times: facts stated in a few hundred short rows need
# several passes to stick (measured on invented-product facts, 173 rows: 3 passes at 8 per step left 2%
# of the paraphrased test questions right, 4 passes at 4 per step 17%, 10 passes 100%), and such a set
# is cheap to repeat. From a few hundred rows on (the seeds' ~500) one pass teaches: the sample orders
# (480 rows) stay at one pass.
ONE_PASS_EXAMPLES = 400
PASS_TOKENS, MAX_PASSES = 80_000, 8.0
# Examples per step. Because steps, not examples per step, decide what a small set learns, small and
# mid-sized sets take steps of 4 (twice the steps for the same compute as 8); from RISKY_DATA on,
# one pass has steps enough and larger steps are steadier. A GPU runs 8 or 16 in the time of 4.
BATCH_SMALL, BATCH_LARGE_CPU = 4, 8
BATCH_SMALL_GPU, BATCH_LARGE_GPU = 8, 16
# Learning rates inside the seeds' guard rails (engine.config.METHOD_LR_TYPICAL).
LEARNING_RATES = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5, "prefix": 1e-2, "prompt": 3e-2}
FULL_LR_LARGE_MODEL = 1e-5  # full fine-tuning of models above LARGE_MODEL moves further per step
LARGE_MODEL = 1_000_000_000
WARMUP_SHARE, WARMUP_MIN, WARMUP_MAX = 0.05, 2, 100
# Validation costs a forward pass over the held-out rows; the plan spends at most this share of the
# training compute on it (a forward pass is about a third of a training pass), between these counts.
VALIDATION_SHARE, VALIDATIONS_MIN, VALIDATIONS_MAX = 0.10, 2, 10
FORWARD_SHARE_OF_TRAINING = 1 / 3
# Keep general ability: where forgetting is likely (the seeds: small data overfits; full fine-tuning
# forgets most; many passes make a model answer everything like its training data).
RISKY_DATA, RISKY_EPOCHS = 2000, 2.0
KEEP_GENERAL_SHARE = 0.25  # general examples added to each step, as a share of the user's examples
FITS_SHARE = 0.9  # a run "fits" when its estimated peak is at most this share of the memory
# Preference tuning (dpo, orpo) goes over the pairs once, at the supervised learning rates, in steps of
# the same size. Measured on LLaMA-Factory's DPO demo pairs (LoRA 2e-4, steps of 4, starter model): with
# 117 and with 210 training pairs the validation loss was lowest after half a pass to one pass and rose
# in the second (the model memorises the pairs); the run keeps its best step by validation loss. The
# floor is the fewest steps that taught the supervised floor's test anything (see STEP_FLOOR).
PREFERENCE_PASSES = 1.0
PREFERENCE_STEP_FLOOR = 32
# The best step is found among the validations, so a preference run has at least this many of them.
PREFERENCE_VALIDATIONS_MIN = 4
FEW_PAIRS = 100
# Keep general ability is not used there: its general conversations are answers to learn, not pairs.
PREFERENCE_KEEP_GENERAL_NOTE = ("not used in preference tuning, which learns from pairs; DPO stays close to the base "
                                "model by its own measure (beta)")


@dataclass(frozen=True)
class PlanInputs:
    """What the plan is made from. Lengths are tokens per training example as trained."""

    examples: int
    lengths: Sequence[int] = ()
    max_length: int = 512
    method: str = "lora"
    model_params: int = 0
    device: str = "cpu"  # "cpu" | "cuda"
    memory_bytes: int = 0  # the memory training must fit in (GPU memory, or RAM); 0: unknown
    method_memory: Mapping[str, int] = field(default_factory=dict)  # estimated peak bytes per method
    val_examples: int = 0
    val_lengths: Sequence[int] = ()
    curve_tokens: int = 0  # tokens scored beside the validation rows at each validation (the live general slice)
    keep_general: str = "auto"  # "auto" | "on" | "off"
    step_limit: int = 0  # training.max_steps: an upper bound the user set (0: none)
    gpus: int = 1


@dataclass(frozen=True)
class Plan:
    method: str
    method_note: str
    batch_size: int
    steps: int
    epochs: float
    lr: float
    warmup_steps: int
    eval_every: int
    save_every: int
    keep_general: bool
    keep_general_note: str
    general_per_step: int  # general examples added to each step when keep_general is on
    explanation: str
    warnings: tuple = ()

    @property
    def warmup_ratio(self) -> float:
        return self.warmup_steps / self.steps if self.steps else 0.0

    @property
    def validations(self) -> int:
        return math.ceil(self.steps / self.eval_every) if self.eval_every else 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        data["warmup_ratio"] = round(self.warmup_ratio, 4)
        return data


def batch_for(examples: int, device: str) -> int:
    """Examples per optimizer step (see BATCH_SMALL): never more than there are examples."""
    large = examples >= RISKY_DATA
    if device == "cuda":
        batch = BATCH_LARGE_GPU if large else BATCH_SMALL_GPU
    else:
        batch = BATCH_LARGE_CPU if large else BATCH_SMALL
    return max(1, min(batch, examples))


def passes_for(lengths: Sequence[int]) -> float:
    """Passes over the data: one, or more for a small set (see PASS_TOKENS)."""
    tokens = sum(lengths)
    if not tokens or len(lengths) >= ONE_PASS_EXAMPLES:
        return PASSES
    return max(PASSES, min(MAX_PASSES, PASS_TOKENS / tokens))


def learning_rate(method: str, model_params: int) -> float:
    if method == "full" and model_params > LARGE_MODEL:
        return FULL_LR_LARGE_MODEL
    return LEARNING_RATES.get(method, LEARNING_RATES["lora"])


def recommend_method(method: str, method_memory: Mapping[str, int], memory_bytes: int,
                     device: str) -> tuple[str, str]:
    """(method to train with, why). LoRA where the 16-bit model fits, QLoRA where only 4-bit does.

    Full fine-tuning, prefix and prompt tuning are kept when asked for (they are never proposed);
    an explicit QLoRA is kept too, with a word when LoRA would fit.
    """
    lora, qlora = method_memory.get("lora"), method_memory.get("qlora")
    where = "graphics card" if device == "cuda" else "computer"
    gib = (lambda b: f"{b / 2**30:.1f} GB")
    if not memory_bytes or lora is None:
        return method, ""
    room = memory_bytes * FITS_SHARE
    if method in ("full", "prefix", "prompt"):
        need = method_memory.get(method)
        if need is not None and need > room:
            return method, (f"{method} needs about {gib(need)}, more than this {where} has ({gib(memory_bytes)}); "
                            f"LoRA would need {gib(lora)}.")
        return method, f"{method} was asked for."
    if lora <= room:
        if method == "qlora":
            return "qlora", (f"QLoRA as asked; LoRA would also fit ({gib(lora)} of {gib(memory_bytes)}) and "
                             "trains faster.")
        return "lora", f"LoRA: the 16-bit model fits this {where} ({gib(lora)} of {gib(memory_bytes)})."
    if qlora is not None and qlora <= room:
        return "qlora", (f"QLoRA: LoRA would need {gib(lora)}, more than this {where}'s {gib(memory_bytes)}; "
                         f"the 4-bit model needs {gib(qlora)}.")
    need = qlora if qlora is not None else lora
    return ("qlora" if qlora is not None else method), (
        f"Even QLoRA needs about {gib(need)}, more than this {where}'s {gib(memory_bytes)}: choose a smaller "
        "model, a shorter maximum length or fewer examples per step.")


def keep_general_for(setting: str, method: str, examples: int, epochs: float) -> tuple[bool, str]:
    if setting == "on":
        return True, "on, as asked"
    if setting == "off":
        return False, "off, as asked"
    if method in ("prefix", "prompt"):
        return False, f"off, because {method} tuning leaves the model's own weights untouched and forgets very little"
    reasons = []
    if method == "full":
        reasons.append("full fine-tuning, which changes every weight")
    if examples < RISKY_DATA:
        reasons.append(f"a small set ({examples:,} examples)")
    if epochs > RISKY_EPOCHS:
        reasons.append(f"{epochs:.2g} passes over the data" if epochs < 10 else f"{epochs:.0f} passes over the data")
    if reasons:
        return True, "on, because forgetting is likely with " + " and ".join(reasons)
    return False, "off, because with this much data and few passes forgetting is unlikely"


def validation_cadence(steps: int, batch: int, lengths: Sequence[int], val_lengths: Sequence[int],
                       val_examples: int, curve_tokens: int = 0, at_least: int = VALIDATIONS_MIN) -> int:
    """Steps between validations: at most VALIDATION_SHARE of the training compute, `at_least` to 10 of them."""
    if val_examples <= 0:
        return steps  # nothing to validate on: the loop's end-of-run check is all there is
    mean = (sum(lengths) / len(lengths)) if lengths else 1.0
    val_tokens = (sum(val_lengths) if val_lengths else val_examples * mean) + curve_tokens
    train_tokens = steps * batch * mean
    affordable = VALIDATION_SHARE * train_tokens / max(1.0, val_tokens * FORWARD_SHARE_OF_TRAINING)
    count = int(max(at_least, min(VALIDATIONS_MAX, affordable)))
    return max(1, math.ceil(steps / count))


def make_plan(inputs: PlanInputs) -> Plan:
    """The settings for `inputs`, with the reasons (see the module docstring)."""
    n = max(0, int(inputs.examples))
    method, method_note = recommend_method(inputs.method, inputs.method_memory, inputs.memory_bytes, inputs.device)
    need = inputs.method_memory.get(method)
    warnings = []
    if need is not None and inputs.memory_bytes and need > inputs.memory_bytes * FITS_SHARE:
        warnings.append(method_note)  # even the recommended method does not fit
    world = max(1, inputs.gpus)
    batch = batch_for(n, inputs.device)
    batch = max(batch, world)  # every process gets at least one example per step
    per_epoch = max(1, math.ceil(n / batch))
    passes = passes_for(inputs.lengths)
    steps = max(STEP_FLOOR, math.ceil(passes * per_epoch)) if n else 0
    limited = bool(inputs.step_limit and steps > inputs.step_limit)
    if limited:
        steps = inputs.step_limit
    epochs = steps * batch / n if n else 0.0
    lr = learning_rate(method, inputs.model_params)
    warmup = warmup_for(steps)
    eval_every = validation_cadence(steps, batch, inputs.lengths, inputs.val_lengths, inputs.val_examples,
                                    inputs.curve_tokens)
    keep, keep_note = keep_general_for(inputs.keep_general, method, n, epochs)
    general = max(1, round(KEEP_GENERAL_SHARE * batch)) if keep else 0
    if inputs.lengths and max(inputs.lengths) > inputs.max_length:
        over = sum(1 for length in inputs.lengths if length > inputs.max_length)
        warnings.append(f"{over} examples are longer than the maximum length ({inputs.max_length} tokens) and are "
                        "cut at the end.")
    if n and n < 10:
        warnings.append(f"Only {n} examples: the model can copy them but will hardly generalise; 50 or more "
                        "varied examples teach a task far better.")
    warning = lr_warning(method, lr)
    if warning:
        warnings.append(warning)
    explanation = _explain(n, batch, steps, epochs, passes, lr, limited, keep)
    return Plan(method=method, method_note=method_note, batch_size=batch, steps=steps, epochs=round(epochs, 3),
                lr=lr, warmup_steps=warmup, eval_every=eval_every, save_every=eval_every, keep_general=keep,
                keep_general_note=keep_note, general_per_step=general, explanation=explanation,
                warnings=tuple(warnings))


def make_preference_plan(inputs: PlanInputs) -> Plan:
    """The automatic plan for preference pairs (training.objective dpo or orpo): one pass (PREFERENCE_PASSES)."""
    n = max(0, int(inputs.examples))
    method, method_note = recommend_method(inputs.method, inputs.method_memory, inputs.memory_bytes, inputs.device)
    batch = max(batch_for(n, inputs.device), max(1, inputs.gpus))
    steps = max(PREFERENCE_STEP_FLOOR, math.ceil(PREFERENCE_PASSES * n / batch)) if n else 0
    limited = bool(inputs.step_limit and steps > inputs.step_limit)
    if limited:
        steps = inputs.step_limit
    epochs = steps * batch / n if n else 0.0
    lr = learning_rate(method, inputs.model_params)
    eval_every = validation_cadence(steps, batch, inputs.lengths, inputs.val_lengths, inputs.val_examples,
                                    inputs.curve_tokens, at_least=PREFERENCE_VALIDATIONS_MIN)
    warnings = [w for w in (lr_warning(method, lr),) if w]
    if n and n < FEW_PAIRS:
        warnings.append(f"Only {n} pairs: the model learns these pairs but hardly which answers are better in "
                        f"general; a few hundred varied pairs teach a preference far better.")
    if not n:
        explanation = "No usable pairs yet: choose a data file first."
    else:
        over = "one pass" if abs(epochs - 1) < 0.05 else f"{epochs:.2g} passes"
        why = ("the step limit you set" if limited else
               f"a small set needs at least {PREFERENCE_STEP_FLOOR} updates" if steps == PREFERENCE_STEP_FLOOR else
               "one pass teaches the preference; a second makes the model memorise the pairs")
        explanation = (f"{steps} steps of {batch} pairs at learning rate {lr:g}, {over} over your {n:,} pairs: {why}. "
                       "The step with the lowest validation loss is kept.")
    return Plan(method=method, method_note=method_note, batch_size=batch, steps=steps, epochs=round(epochs, 3), lr=lr,
                warmup_steps=warmup_for(steps), eval_every=eval_every, save_every=eval_every, keep_general=False,
                keep_general_note=PREFERENCE_KEEP_GENERAL_NOTE, general_per_step=0, explanation=explanation,
                warnings=tuple(warnings))


def warmup_for(steps: int) -> int:
    """Warm-up steps of an automatic plan: WARMUP_SHARE of the steps, within WARMUP_MIN..WARMUP_MAX."""
    warmup = min(WARMUP_MAX, max(WARMUP_MIN, round(WARMUP_SHARE * steps))) if steps else 0
    return min(warmup, max(0, steps - 1))


def lr_warning(method: str, lr: float) -> Optional[str]:
    """The seeds' learning-rate guard rail (engine.config's typical ranges), for a plan's own choice too."""
    from engine import config as cfg

    low, high = cfg.METHOD_LR_TYPICAL.get(method, cfg.field_info("training", "lr")["typical"])
    if low <= lr <= high:
        return None
    advice = cfg.METHOD_LR_WARN.get(method) or cfg.field_info("training", "lr")["warn"]
    return f"Learning rate {lr:g} is outside the usual {low:g}..{high:g} for {method}. {advice}"


def custom_plan(inputs: PlanInputs, *, batch_size: int, epochs: float, max_steps: int, lr: float,
                warmup_ratio: float, eval_every: int, save_every: int, step_floor: int = STEP_FLOOR,
                unit: str = "examples") -> Plan:
    """The user's own settings (training.plan: custom), in the same shape as an automatic plan. `unit`
    names what a step is made of ("pairs" in preference tuning)."""
    n = max(0, int(inputs.examples))
    batch = max(1, batch_size)
    steps = max_steps or (max(1, math.ceil(epochs * max(1, math.ceil(n / batch)))) if n else 0)
    real_epochs = steps * batch / n if n else 0.0
    every = eval_every or max(1, math.ceil(steps / 10))
    keep, keep_note = keep_general_for(inputs.keep_general, inputs.method, n, real_epochs)
    warnings = [w for w in (lr_warning(inputs.method, lr),) if w]
    if n and steps < step_floor and n < RISKY_DATA:
        warnings.append(f"{steps} steps: small data sets needed at least {step_floor} before the model learned "
                        "anything in our measurements. The automatic plan takes care of this.")
    explanation = (f"Your settings: {steps} steps of {batch} {unit} ({real_epochs:.3g} passes over "
                   f"{n:,} {unit}) at learning rate {lr:g}.")
    return Plan(method=inputs.method, method_note="", batch_size=batch, steps=steps, epochs=round(real_epochs, 3),
                lr=lr, warmup_steps=int(round(warmup_ratio * steps)), eval_every=every, save_every=save_every or every,
                keep_general=keep, keep_general_note=keep_note,
                general_per_step=max(1, round(KEEP_GENERAL_SHARE * batch)) if keep else 0,
                explanation=explanation, warnings=tuple(warnings))


def _explain(n: int, batch: int, steps: int, epochs: float, passes: float, lr: float, limited: bool,
             keep: bool) -> str:
    if not n:
        return "No usable examples yet: choose a data file first."
    over = "one pass" if abs(epochs - 1) < 0.05 else f"{epochs:.2g} passes" if epochs < 10 else f"{epochs:.0f} passes"
    if limited:
        why = "the step limit you set"
    elif steps == STEP_FLOOR and math.ceil(passes * math.ceil(n / batch)) < STEP_FLOOR:
        why = f"a small set needs at least {STEP_FLOOR} updates before the model picks anything up"
    elif passes > PASSES:
        why = "a small set is gone over several times so that what it says sticks"
    else:
        why = "one pass teaches the task without memorising the examples"
    first = f"{steps} steps of {batch} examples at learning rate {lr:g}, {over} over your {n:,} examples: {why}."
    second = " It also keeps the model's answers to general questions close to what they were." if keep else ""
    return first + second


def describe(plan: Plan, seconds: Optional[float] = None) -> str:
    """The plan as a few plain lines (the CLI's --print-plan and the window's tooltip)."""
    lines = [plan.explanation]
    if seconds is not None:
        from engine.train.timing import format_duration

        lines.append(f"Time on this computer: {format_duration(seconds)}.")
    lines.append(f"Method: {plan.method_note}" if plan.method_note else f"Method: {plan.method}.")
    each = (f" Each step adds {plan.general_per_step} general conversation"
            f"{'s' if plan.general_per_step > 1 else ''} to the user's examples." if plan.keep_general else "")
    lines.append(f"Keep general ability: {plan.keep_general_note}.{each}")
    lines.append(f"Settings: examples per step {plan.batch_size}, steps {plan.steps}, learning rate {plan.lr:g}, "
                 f"warm-up {plan.warmup_steps} steps, validation and checkpoint every {plan.eval_every} steps.")
    lines.extend(f"Warning: {w}" for w in plan.warnings)
    return "\n".join(lines)
