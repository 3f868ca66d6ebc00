"""The one configuration tree: model, data, method, training, evaluation.

Each field carries a help text (the window's tooltip, the CLI's help) and, where it is a number,
a valid range (values outside are refused) and a typical range (values outside get a plain-words
warning). On disk it is YAML; the window and `tunesmith-cli train` read and write the same file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from engine.errors import TunesmithError

METHODS = ("qlora", "lora", "full", "prefix", "prompt")
FORMATS = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference")
OBJECTIVES = ("sft", "dpo", "orpo")
# Preference tuning changes what the model prefers; prefix and prompt tuning have too little to change it with.
PREFERENCE_METHODS = ("qlora", "lora", "full")
TEMPLATES = ("auto", "chatml", "alpaca", "llama3", "plain")


def setting(default: Any, help: str, *, valid: Optional[tuple] = None, typical: Optional[tuple] = None,
            choices: Optional[tuple] = None, warn: str = ""):
    """A config field with its help text, its valid range, and the range where it usually works.

    `warn` is said to the user when a value leaves the typical range.
    """
    meta = {"help": help, "valid": valid, "typical": typical, "choices": choices, "warn": warn}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = setting("starter", "The base model: 'starter' (SmolLM2-135M-Instruct, built in), a local "
                        "Hugging Face folder, a .gguf file, or a Hugging Face hub id (needs internet).")
    template: str = setting("auto", "How examples are laid out as text. 'auto' uses the model's own chat "
                            "template, the same one used later for chat and export.", choices=TEMPLATES)
    trust_remote_code: bool = setting(False, "Let a model run the Python code it ships with (custom "
                                      "architectures on the hub). That code runs with your permissions: only "
                                      "for models from publishers you trust. Off unless you ask for it.")


@dataclass
class DataConfig:
    path: str = setting("", "The training data: JSON, JSONL, CSV, TSV, Parquet or a saved dataset folder.")
    val_path: str = setting("", "Optional separate validation file. Empty: hold out part of the training data.")
    test_path: str = setting("", "Optional separate test file, used only for the before/after evaluation. Empty: "
                             "keep part of the training data aside as the test set.")
    format: str = setting("auto", "The layout of the data. 'auto' detects it.", choices=FORMATS)
    mapping: dict = setting({}, "Column to role, for files whose columns are not recognised, e.g. "
                            "{question: prompt, answer: completion}.")
    val_fraction: float = setting(0.1, "Share of examples held out to measure validation loss.",
                                  valid=(0.0, 0.5), typical=(0.05, 0.2))
    val_max_rows: int = setting(200, "At most this many validation examples, so validation stays quick.",
                                valid=(1, 100000))
    test_fraction: float = setting(0.1, "Share of examples kept aside, never trained on or used to choose the best "
                                   "step, to measure the tuned model honestly after training.",
                                   valid=(0.0, 0.5), typical=(0.05, 0.2))
    test_max_rows: int = setting(200, "At most this many test examples, so evaluation stays quick.",
                                 valid=(1, 100000))
    max_length: int = setting(512, "Longest example in tokens; longer ones are cut at the end.",
                              valid=(16, 131072), typical=(128, 4096))
    train_on_prompt: bool = setting(False, "Also learn the prompt tokens. Off: only the answers are learned, "
                                    "which is what instruction tuning wants.")
    completion_separator: str = setting("", "Plain-text data only: the text that ends what is given and starts "
                                        "what the model should write, e.g. 'A:' or '\\n\\n' (a blank line). "
                                        "Training then learns only what follows it, and evaluation scores the "
                                        "answers. Empty: every token is learned and only loss is measured.")
    mix_path: str = setting("", "Optional general-purpose data mixed in to protect what the model already knows.")
    mix_ratio: float = setting(0.0, "Share of each epoch drawn from the mix-in data.", valid=(0.0, 0.9),
                               typical=(0.0, 0.5))
    seed: int = setting(42, "Seed for the train/validation/test split.", valid=(0, 2**31 - 1))


@dataclass
class MethodConfig:
    name: str = setting("lora", "How the model is adapted: qlora, lora, full, prefix or prompt.", choices=METHODS)
    lora_r: int = setting(16, "LoRA rank: the size of the learned update. Higher learns more, costs more "
                          "memory and forgets more.", valid=(1, 1024), typical=(4, 128))
    lora_alpha: int = setting(32, "LoRA scale. About twice the rank is a safe choice.", valid=(1, 4096))
    lora_dropout: float = setting(0.05, "Dropout on the LoRA path; a little helps small datasets.",
                                  valid=(0.0, 0.9), typical=(0.0, 0.2))
    target_modules: str = setting("all-linear", "Layers that get LoRA adapters: 'all-linear' or a "
                                  "comma-separated list such as 'q_proj,v_proj'.")
    num_virtual_tokens: int = setting(20, "Prefix and prompt tuning: how many learned virtual tokens.",
                                      valid=(1, 512), typical=(8, 100))
    quant_compute_dtype: str = setting("auto", "QLoRA: precision of the 4-bit layers' arithmetic. 'auto' "
                                       "uses bf16 where the hardware has it.", choices=("auto", "bf16", "fp16", "fp32"))


PLANS = ("auto", "custom")
KEEP_GENERAL = ("auto", "on", "off")


@dataclass
class TrainingConfig:
    plan: str = setting("auto", "How the training settings are chosen. 'auto': from your data and this computer "
                        "(steps, examples per step, learning rate, warm-up, validation), explained before you "
                        "start. 'custom': the passes, examples per step, step limit and learning rate as you "
                        "set them.", choices=PLANS)
    keep_general: str = setting("auto", "Keep general ability: while learning your data, the model also keeps "
                                "answering general questions as it did before (it is held to its own earlier "
                                "answers to built-in prompts; needs no data from you). 'auto' turns it on where "
                                "forgetting is likely: small data, many passes, full fine-tuning.",
                                choices=KEEP_GENERAL)
    objective: str = setting("sft", "What training teaches. sft: to write the answers in the data. dpo: to prefer "
                             "the chosen answer of each pair over the rejected one, staying close to the base model. "
                             "orpo: the same without a reference model, while also learning the chosen answers.",
                             choices=OBJECTIVES)
    beta: float = setting(0.1, "Preference tuning (dpo, orpo): how strongly preferences pull. DPO: higher keeps the "
                          "model closer to the base. ORPO: the weight of the preference term.",
                          valid=(1e-4, 10.0), typical=(0.01, 0.5))
    epochs: float = setting(3.0, "Passes over the training data.", valid=(0.01, 1000), typical=(1, 10),
                            warn="Many epochs on a small dataset make the model memorise it.")
    max_steps: int = setting(0, "Stop after this many optimizer steps (0: use epochs).", valid=(0, 10**7))
    lr: float = setting(2e-4, "Learning rate: how big each update is. Fine-tuning typically uses 1e-5 to 2e-4.",
                        valid=(1e-8, 1e-1), typical=(1e-5, 2e-4),
                        warn="A learning rate this far from 1e-5..2e-4 tends to either learn nothing or "
                             "destroy what the model already knew.")
    batch_size: int = setting(8, "Examples per optimizer step (the effective batch).", valid=(1, 4096),
                              typical=(1, 128))
    micro_batch_size: int = setting(0, "Examples per forward pass; 0 picks one that fits. Smaller uses "
                                    "less memory, same result.", valid=(0, 4096))
    warmup_ratio: float = setting(0.05, "Share of steps spent ramping the learning rate up.", valid=(0.0, 0.5))
    weight_decay: float = setting(0.0, "Weight decay (a pull towards zero on trained weights).", valid=(0.0, 1.0))
    scheduler: str = setting("cosine", "How the learning rate changes over the run.",
                             choices=("cosine", "linear", "constant"))
    max_grad_norm: float = setting(1.0, "Gradients are clipped to this norm; protects against spikes.",
                                   valid=(0.0, 1000.0))
    precision: str = setting("auto", "Number format for training: 'auto' uses bf16 where the hardware "
                             "supports it, else fp32 (the environment variable TUNESMITH_PRECISION "
                             "changes what 'auto' means).", choices=("auto", "bf16", "fp16", "fp32"))
    packing: bool = setting(True, "Pack several short examples into one row without letting them see each "
                            "other: less padding, faster.")
    label_only_logits: bool = setting(True, "Compute the vocabulary projection only where a token is learned "
                                      "(prompt and padding need none): faster and lighter, same loss.")
    attention: str = setting("sdpa", "Attention implementation: 'sdpa' (fused, fast) or 'eager' (plain, for "
                             "comparison).", choices=("sdpa", "eager"))
    gradient_checkpointing: str = setting("auto", "Trade speed for memory by recomputing activations. "
                                          "'auto' turns it on only when memory is tight.", choices=("auto", "on", "off"))
    eval_every: int = setting(0, "Measure validation loss every N steps (0: about 10 times per run).",
                              valid=(0, 10**6))
    save_every: int = setting(0, "Save a checkpoint every N steps (0: at each validation).", valid=(0, 10**6))
    general_curve: bool = setting(True, "At each validation, also score a fixed set of 28 general-knowledge "
                                  "questions (a few seconds on the starter model): the 'general knowledge' curve, "
                                  "which shows forgetting while it happens.")
    early_stopping_patience: int = setting(3, "Stop when validation loss has not improved for this many "
                                           "validations (0: never stop early).", valid=(0, 1000))
    keep_checkpoints: int = setting(2, "How many recent checkpoints to keep besides the best.", valid=(1, 100))
    seed: int = setting(42, "Seed for initialisation and data order; same seed, same run.", valid=(0, 2**31 - 1))
    threads: int = setting(0, "CPU threads (0: one per physical core).", valid=(0, 1024))
    optimizer: str = setting("auto", "AdamW, or bitsandbytes' 8-bit AdamW (paged: spills to CPU memory instead "
                             "of failing). 'auto' takes paged 8-bit on a GPU when over 50M weights are trained.",
                             choices=("auto", "adamw", "adamw_8bit", "paged_adamw_8bit"))
    fused_kernels: str = setting("auto", "GPU only: Liger Kernel's fused RMSNorm, RoPE and SwiGLU where the model "
                                 "family has them (needs the liger-kernel package). Same maths, less memory traffic.",
                                 choices=("auto", "on", "off"))
    compile: str = setting("off", "GPU only: compile each decoder layer with torch.compile. Same maths; the "
                           "first steps are slower while it compiles.", choices=("on", "off"))


@dataclass
class EvaluationConfig:
    max_new_tokens: int = setting(128, "Longest answer generated per example.", valid=(1, 8192))
    examples: int = setting(20, "Held-out examples answered by base and tuned model.", valid=(0, 10000))
    temperature: float = setting(0.0, "0 answers deterministically (greedy); higher is more varied.",
                                 valid=(0.0, 5.0), typical=(0.0, 1.5))
    probe: bool = setting(True, "Also ask the short general-knowledge probe questions (answers you can read; "
                          "graded strictly).")
    benchmark: str = setting("full", "Check general ability (catastrophic forgetting) on the built-in benchmark: "
                             "'full' (every question, narrowest intervals), 'quick' (a third of them, about three "
                             "times faster, wider intervals) or 'off'.", choices=("full", "quick", "off"))


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    out: str = setting("", "Run folder. Empty: a new dated folder under the data directory's runs/.")


SECTIONS = ("model", "data", "method", "training", "evaluation")

# Per-method defaults that work on the starter model out of the box.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "qlora": {"training.lr": 2e-4},
    "lora": {"training.lr": 2e-4},
    "full": {"training.lr": 2e-5},
    "prefix": {"training.lr": 1e-2},
    "prompt": {"training.lr": 3e-2},
}
# Prefix and prompt tuning learn a handful of virtual tokens from scratch: they need far larger rates.
# Full fine-tuning moves every weight, so it needs a lower one than the seeds' 1e-5..2e-4 for adapters.
METHOD_LR_TYPICAL = {"prefix": (1e-3, 5e-2), "prompt": (1e-3, 1e-1), "full": (1e-6, 5e-5)}
# What each range's warning says (the field's own `warn` covers the adapters).
METHOD_LR_WARN = {"full": "Full fine-tuning changes every weight: above about 5e-5 it tends to destroy what the "
                          "model already knew; below 1e-6 it learns next to nothing."}


class ConfigError(TunesmithError, ValueError):
    """A value that cannot be used; the message names the key and says what to do."""


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    level: str  # "error" | "warning"


def field_info(section: str, name: str) -> dict:
    """Help text and ranges for one field, e.g. field_info('training', 'lr')."""
    cls = type(getattr(RunConfig(), section)) if section else RunConfig
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(f"{section}.{name}")


def iter_fields(config: RunConfig):
    """Yield (dotted_key, value, metadata) for every leaf field."""
    for section in SECTIONS:
        obj = getattr(config, section)
        for f in dataclasses.fields(obj):
            yield f"{section}.{f.name}", getattr(obj, f.name), f.metadata
    yield "out", config.out, field_info("", "out")


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(data: dict, source: str = "config") -> RunConfig:
    """Build a config from plain data; unknown keys are an error that names the key."""
    data = dict(data or {})
    config = RunConfig()
    for key, value in data.items():
        if key == "out":
            config.out = str(value or "")
            continue
        if key not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{key}'. Known sections: {', '.join(SECTIONS)}, out.")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping of settings.")
        for name, inner in value.items():
            set_value(config, f"{key}.{name}", inner, source=source)
    return config


def _coerce(value: Any, target_type: Any, key: str, source: str) -> Any:
    kind = target_type if isinstance(target_type, type) else {"str": str, "int": int, "float": float,
                                                               "bool": bool, "dict": dict}.get(str(target_type))
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            return float(value)
        if kind is str:
            return "" if value is None else str(value)
        if kind is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value) or {}
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} = {value!r} is not a valid {getattr(kind, '__name__', kind)}.") from None
    return value


def set_value(config: RunConfig, dotted: str, value: Any, source: str = "--set") -> None:
    """Set one dotted key such as 'training.lr', converting the value to the field's type."""
    if dotted == "out":
        config.out = str(value or "")
        return
    section, _, name = dotted.partition(".")
    if section not in SECTIONS or not name:
        raise ConfigError(f"{source}: unknown setting '{dotted}'. Settings look like training.lr or method.lora_r.")
    obj = getattr(config, section)
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields:
        close = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: '{section}' has no setting '{name}'. Known: {close}.")
    setattr(obj, name, _coerce(value, fields[name].type, dotted, source))


def check(config: RunConfig) -> list[Problem]:
    """Every value outside its valid range or choices (error) or its typical range (warning)."""
    problems: list[Problem] = []
    for key, value, meta in iter_fields(config):
        choices, valid, typical = meta.get("choices"), meta.get("valid"), meta.get("typical")
        if key == "training.lr":
            typical = METHOD_LR_TYPICAL.get(config.method.name, typical)
            meta = dict(meta, warn=METHOD_LR_WARN.get(config.method.name, meta.get("warn")))
        if choices and value not in choices:
            problems.append(Problem(key, f"{key} = {value!r}: choose one of {', '.join(choices)}.", "error"))
        elif valid and isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or not (valid[0] <= value <= valid[1]):  # value != value catches NaN
                problems.append(Problem(key, f"{key} = {value}: must be between {valid[0]} and {valid[1]}. "
                                             f"{meta['help']}", "error"))
            elif typical and not (typical[0] <= value <= typical[1]):
                advice = meta.get("warn") or f"Values between {typical[0]} and {typical[1]} usually work best."
                problems.append(Problem(key, f"{key} = {value:g} is outside the usual {typical[0]:g}..{typical[1]:g}. "
                                             f"{advice}", "warning"))
    if not config.data.path:
        problems.append(Problem("data.path", "No training data chosen: set data.path (or --data FILE).", "error"))
    if config.training.objective != "sft" and config.method.name not in PREFERENCE_METHODS:
        problems.append(Problem("training.objective", f"training.objective = {config.training.objective}: preference "
                                f"tuning works with {', '.join(PREFERENCE_METHODS)}, not {config.method.name}. "
                                "Choose one of those methods, or the sft objective.", "error"))
    if config.data.mix_ratio > 0 and not config.data.mix_path:
        problems.append(Problem("data.mix_ratio", "data.mix_ratio is set but data.mix_path is empty: choose the "
                                                  "general data to mix in, or set the ratio to 0.", "error"))
    return problems


def validate(config: RunConfig) -> list[Problem]:
    """Raise ConfigError listing every error; return the warnings."""
    problems = check(config)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise ConfigError("\n".join(p.message for p in errors))
    return [p for p in problems if p.level == "warning"]


def apply_method_defaults(config: RunConfig, method: str) -> None:
    """Switch method and take its default learning rate (used by the window and `--method`)."""
    config.method.name = method
    for key, value in METHOD_DEFAULTS.get(method, {}).items():
        set_value(config, key, value)


def dump_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def save(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(dump_yaml(config), encoding="utf-8")


def load(path: str | Path) -> RunConfig:
    """Read a YAML config; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (model, data, method, training, evaluation).")
    return from_dict(data or {}, source=str(path))
