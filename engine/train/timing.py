"""How long a run will take: a model of this machine's measured throughput, and the run's clock.

Pure Python (no torch): the window calls it in its own process. The work of a run is counted in
floating-point operations from the model's shape and the data's token lengths:

    linear layers   2 x body parameters x tokens            (every token, forward)
    attention       2 x layers x width x length^2 per example
    output layer    2 x vocabulary x width x learned tokens (only where a token is learned)

and turned into seconds with rates measured on this machine (engine.train.calibrate: a short timed
pass of the real model, refreshed by every finished run): seconds per operation for a training pass
(forward and backward) and for a forward pass, plus fixed costs per pass and per step, the start-up
(imports, loading the model and data) and a decoding step for the keep-general answers.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

LEARNED_SHARE_DEFAULT = 0.35  # share of tokens learned when only full lengths are known (chat data)
CPU_TOKENS_PER_PASS = 1024  # engine.train.batching.CPU_TOKENS_PER_PASS
ANSWER_BATCH = 32  # engine.train.keep_general.base_answers writes this many answers at once
SAVE_SECONDS_ADAPTER = 0.3  # writing a checkpoint of an adapter (measured: 0.1-0.3 s)
SAVE_BYTES_PER_SECOND = 200e6  # full fine-tuning checkpoints: weights + optimizer state to disk
# The live general-knowledge slice (engine.train.general_curve) scored at every validation and once for
# the base model: its 28 questions packed behind one shared start are 2,059 tokens with the starter's
# tokenizer (bench/general_check.py), 1,226 of them answer tokens, in rows of up to 1,024.
CURVE_TOKENS, CURVE_ANSWER_TOKENS, CURVE_ROW = 2059, 1226, 1024


@dataclass(frozen=True)
class ModelShape:
    """What the work depends on, read from the model's config.json."""

    params: int
    hidden: int
    layers: int
    vocab: int
    tied: bool = True

    @property
    def head_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def body_params(self) -> int:
        embeddings = self.head_params * (1 if self.tied else 2)
        return max(1, self.params - embeddings)

    @classmethod
    def from_config(cls, config: dict, params: int = 0) -> "ModelShape":
        hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
        layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 0)
        vocab = int(config.get("vocab_size") or 0)
        if not params:
            params = estimate_params(config)
        return cls(params=params, hidden=hidden, layers=layers, vocab=vocab,
                   tied=bool(config.get("tie_word_embeddings", True)))


def estimate_params(config: dict) -> int:
    """Parameters of a decoder-only transformer from its config (for files without weights read)."""
    d = int(config.get("hidden_size", 0))
    layers = int(config.get("num_hidden_layers", 0))
    heads = int(config.get("num_attention_heads", 1) or 1)
    kv = int(config.get("num_key_value_heads", heads) or heads)
    head_dim = int(config.get("head_dim") or (d // heads if heads else 0))
    mlp = int(config.get("intermediate_size", 4 * d))
    vocab = int(config.get("vocab_size", 0))
    attention = d * heads * head_dim * 2 + d * kv * head_dim * 2
    per_layer = attention + 3 * d * mlp + 2 * d
    embeddings = vocab * d * (1 if config.get("tie_word_embeddings", True) else 2)
    return layers * per_layer + embeddings + d


@dataclass(frozen=True)
class Throughput:
    """Measured rates of this machine for one model, method, precision and device."""

    train_s_per_flop: float  # forward + backward (+ optimizer share), per forward operation
    eval_s_per_flop: float  # forward only, no gradients
    pass_s: float  # fixed cost of one forward(+backward) pass
    step_s: float  # fixed cost of one optimizer step (clip, update, schedule)
    startup_s: float  # from the command to the first step: imports, model and data loaded
    decode_step_s: float = 0.0  # one batched decoding step (keep-general answers)
    source: str = "calibrated"  # "calibrated" | "measured in a run"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Throughput":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def forward_flops(shape: ModelShape, lengths: Sequence[int], learned: Sequence[int]) -> float:
    """Forward operations for examples of `lengths` tokens with `learned` learned tokens each."""
    tokens = sum(lengths)
    attention = sum(2.0 * shape.layers * shape.hidden * length * length for length in lengths)
    return 2.0 * shape.body_params * tokens + attention + 2.0 * shape.head_params * sum(learned)


def packed_rows(lengths: Sequence[int], max_length: int) -> int:
    """Rows of up to max_length tokens that one step's examples are packed into (engine.train.batching)."""
    return max(1, math.ceil(sum(lengths) / max(1, max_length)))


def passes_for(lengths: Sequence[int], max_length: int, device: str) -> int:
    """Forward passes one step's examples take: a CPU pass holds about CPU_TOKENS_PER_PASS tokens."""
    if device != "cpu":
        return 1
    rows_per_pass = max(1, CPU_TOKENS_PER_PASS // max(1, max_length))
    return max(1, math.ceil(packed_rows(lengths, max_length) / rows_per_pass))


@dataclass
class RunWork:
    """What one run does, in the units Throughput prices."""

    steps: int
    batch: int
    mean_length: float
    mean_learned: float
    max_length: int
    device: str = "cpu"
    validations: int = 0
    val_lengths: Sequence[int] = ()
    val_learned: Sequence[int] = ()
    general_per_step: int = 0
    general_length: float = 0.0
    general_learned: float = 0.0
    general_kl: bool = True  # the KL term adds a no-gradient forward pass of the general examples
    general_answers_to_write: int = 0  # prompts the base model still has to answer (first run per model)
    general_answer_tokens: int = 48
    saves: int = 0
    save_bytes: int = 0  # 0: adapter checkpoints (small)
    general_curve: bool = False  # the live general-knowledge slice is scored at each validation (and once at step 0)
    # DPO scores every pair under the reference model too: a no-gradient forward pass of the same tokens
    # in each step and each validation (LoRA and QLoRA: the adapter switched off; full fine-tuning computes
    # it once before training, about the same work for a plan's single pass).
    reference_forward: bool = False

    @staticmethod
    def mean(values: Sequence[int], default: float = 0.0) -> float:
        return sum(values) / len(values) if values else default


@dataclass
class Estimate:
    """Predicted seconds of a run, by part, and the per-step seconds the run's clock starts from."""

    total_s: float
    startup_s: float
    steps_s: float
    validation_s: float
    general_s: float  # the keep-general share of steps_s (included there)
    answers_s: float  # the base model writing its general answers (first run with a model)
    saves_s: float
    step_s: float  # one ordinary step
    first_step_s: float
    parts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def estimate(work: RunWork, shape: ModelShape, rate: Throughput) -> Estimate:
    """Seconds for `work` on the machine `rate` was measured on."""
    length, learned = work.mean_length, work.mean_learned
    step_lengths = [length] * work.batch
    user_flops = forward_flops(shape, step_lengths, [learned] * work.batch)
    passes = passes_for(step_lengths, work.max_length, work.device)
    user_s = user_flops * rate.train_s_per_flop + passes * rate.pass_s
    if work.reference_forward:
        user_s += user_flops * rate.eval_s_per_flop + passes * rate.pass_s
    general_s = 0.0
    if work.general_per_step:
        g_lengths = [work.general_length] * work.general_per_step
        g_flops = forward_flops(shape, g_lengths, [work.general_learned] * work.general_per_step)
        g_passes = passes_for(g_lengths, work.max_length, work.device)
        general_s = g_flops * rate.train_s_per_flop + g_passes * rate.pass_s
        if work.general_kl:
            general_s += g_flops * rate.eval_s_per_flop + g_passes * rate.pass_s
    step_s = user_s + general_s + rate.step_s
    # A new run's first step goes one packed row per pass, so its first loss comes quickly (engine.train.loop).
    first_step_s = step_s + max(0, packed_rows(step_lengths, work.max_length) - passes) * rate.pass_s
    steps_s = first_step_s + max(0, work.steps - 1) * step_s
    val_flops = forward_flops(shape, list(work.val_lengths), list(work.val_learned)) if work.val_lengths else 0.0
    val_passes = math.ceil(len(work.val_lengths) / max(1, work.batch)) if work.val_lengths else 0
    validation_s = work.validations * (val_flops * rate.eval_s_per_flop + val_passes * rate.pass_s)
    if work.reference_forward:
        validation_s *= 2
    if work.general_curve and work.validations:
        validation_s += (work.validations + 1) * curve_seconds(shape, rate)
    answers_s = 0.0
    if work.general_answers_to_write:
        batches = math.ceil(work.general_answers_to_write / ANSWER_BATCH)
        answers_s = batches * work.general_answer_tokens * rate.decode_step_s
    per_save = work.save_bytes / SAVE_BYTES_PER_SECOND if work.save_bytes else SAVE_SECONDS_ADAPTER
    saves_s = (work.saves + 1) * per_save  # +1: the final weights
    total = rate.startup_s + steps_s + validation_s + answers_s + saves_s
    return Estimate(total_s=total, startup_s=rate.startup_s, steps_s=steps_s, validation_s=validation_s,
                    general_s=general_s * work.steps, answers_s=answers_s, saves_s=saves_s, step_s=step_s,
                    first_step_s=first_step_s)


def curve_seconds(shape: ModelShape, rate: Throughput) -> float:
    """One scoring of the live general-knowledge slice (forward only, packed rows)."""
    rows = math.ceil(CURVE_TOKENS / CURVE_ROW)
    lengths = [CURVE_TOKENS / rows] * rows
    flops = forward_flops(shape, lengths, [CURVE_ANSWER_TOKENS / rows] * rows)
    return flops * rate.eval_s_per_flop + rows * rate.pass_s


class RunClock:
    """The Training view's ETA from step 1: the estimate, corrected by how fast the steps really go.

    The correction trusts measured steps more as they accumulate: after k steps the predicted rest is
    scaled by (measured + PRIOR x predicted step) / (predicted for those k steps + PRIOR x predicted step).
    """

    PRIOR_STEPS = 2.0

    def __init__(self, estimate: Estimate, total_steps: int, validations_left: int):
        self.estimate = estimate
        self.total_steps = total_steps
        self.validations_left = validations_left
        self.per_validation = estimate.validation_s / max(1, validations_left) if validations_left else 0.0

    def eta(self, step: int, steps_elapsed_s: float, steps_done: int, validations_left: int) -> float:
        """Seconds left after `step` of `total_steps`; `steps_elapsed_s` is the time the `steps_done` steps took."""
        e = self.estimate
        predicted_done = (e.first_step_s + max(0, steps_done - 1) * e.step_s) if steps_done else 0.0
        prior = self.PRIOR_STEPS * e.step_s
        ratio = (steps_elapsed_s + prior) / (predicted_done + prior) if predicted_done + prior > 0 else 1.0
        rest = (self.total_steps - step) * e.step_s + validations_left * self.per_validation
        return max(0.0, rest * ratio)


def format_duration(seconds: float) -> str:
    """'about 40 seconds', 'about 4 minutes', 'about 2.5 hours'."""
    if seconds < 90:
        return f"about {max(10, int(round(seconds / 10.0)) * 10)} seconds"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} minutes"
    return f"about {minutes / 60:.1f} hours"


# ------------------------------------------------------------------------------------------ the cache
CACHE_FILE = "throughput.json"


def throughput_key(config, model_dir: str, device_type: str) -> str:
    """Rates depend on the model, the method, the objective, the number format and the threads, as configured
    (so the window, which cannot ask torch what 'auto' resolves to, finds the same entry as the engine)."""
    t = config.training
    precision = t.precision
    if precision == "auto":  # what auto means may be forced from outside (engine.train.hardware.PRECISION_ENV)
        precision = "auto:" + os.environ.get("TUNESMITH_PRECISION", "").strip().lower()
    key = [str(Path(model_dir).resolve()), config.method.name, precision, device_type, int(t.threads)]
    if t.objective != "sft":  # a preference step costs differently per token: its runs must not teach SFT's rates
        key.append(t.objective)
    return json.dumps(key)


def load_throughput(data_dir: Path, key: str) -> Optional[Throughput]:
    """The rates stored for `key`, or None (nothing measured yet, or an unreadable file)."""
    try:
        stored = json.loads((Path(data_dir) / CACHE_FILE).read_text(encoding="utf-8"))
        return Throughput.from_dict(stored[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_throughput(data_dir: Path, key: str, rate: Throughput) -> None:
    path = Path(data_dir) / CACHE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    stored[key] = rate.to_dict()
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(stored, indent=1), encoding="utf-8")
    temp.replace(path)
