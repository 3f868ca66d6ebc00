"""The five ways of adapting a model: loading the base and making the right parameters trainable.

qlora  4-bit NF4 base (bitsandbytes, double quantization) + LoRA adapters
lora   LoRA adapters on a bf16/fp32 base
full   every weight is trained
prefix learned key/value prefixes in every layer (PEFT prefix tuning)
prompt learned virtual input tokens (PEFT prompt tuning)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from engine import remote_code
from engine.config import ConfigError, RunConfig
from engine.families import kernel_problem

ADAPTER_METHODS = ("qlora", "lora", "prefix", "prompt")


@dataclass
class LoadedModel:
    model: torch.nn.Module  # a PeftModel for adapter methods, the plain model for full fine-tuning
    method: str  # the method actually used (qlora can fall back to lora)
    quantized: bool


def _target_modules(config: RunConfig):
    spec = config.method.target_modules.strip()
    if spec in ("", "all-linear"):
        return "all-linear"
    return [name.strip() for name in spec.split(",") if name.strip()]


def peft_config_for(config: RunConfig, method: str):
    """The PEFT configuration of an adapter method; None for full fine-tuning."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    m = config.method
    if method in ("lora", "qlora"):
        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=m.lora_r, lora_alpha=m.lora_alpha,
                          lora_dropout=m.lora_dropout, target_modules=_target_modules(config))
    if method == "prefix":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=m.num_virtual_tokens)
    if method == "prompt":
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=m.num_virtual_tokens)
    return None


def quant_compute_dtype(setting: str, device: torch.device, precision: str = "auto") -> torch.dtype:
    """The arithmetic format of the 4-bit layers; 'auto' follows the training precision.

    On a GPU 'auto' is bf16 (fp16 without bf16) even for fp32 training: 4-bit layers in fp32 are slow
    there. On the CPU it is the training precision itself, so fp32 training stays fp32 throughout.
    """
    from engine.train.hardware import DTYPES, resolve_precision

    if setting != "auto":
        return DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[resolve_precision(precision, device)]


def _bnb_problem(device: torch.device) -> Optional[str]:
    """Why 4-bit loading cannot work here, in plain words, or None."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # a broken install raises all sorts of errors at import
        return f"the bitsandbytes library could not be loaded ({exc.__class__.__name__})"
    if device.type == "cpu":
        from importlib.metadata import version

        parts = version("bitsandbytes").split(".")
        if (int(parts[0]), int(parts[1])) < (0, 49):
            return "4-bit training on the CPU needs bitsandbytes 0.49 or newer"
    return None


def attention_for(config: RunConfig, model_config=None) -> Optional[str]:
    """The attention implementation to load: packed rows get per-example causal kernels.

    Prefix and prompt tuning are never packed (their virtual tokens sit at the start of a row). Given
    the model's configuration, the kernel is used only where engine.families allows it; elsewhere
    'sdpa' becomes None, the model's own choice (SDPA where the model supports it, else eager).
    """
    t = config.training
    if t.attention == "sdpa" and t.packing and config.method.name not in ("prefix", "prompt"):
        if model_config is not None and kernel_problem(model_config, config.data.max_length):
            return None
        from engine.train import attention

        return attention.register()
    if t.attention == "sdpa" and model_config is not None:
        return None
    return t.attention


def _check_target_modules(model, targets: list[str], setting: str) -> None:
    """A name in method.target_modules that is no layer of this model is a ConfigError listing the real ones."""
    from engine.config import ConfigError

    layers = [name for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Conv1D")]
    linear = linear_layer_names(model)
    unknown = [target for target in targets
               if not any(name == target or name.endswith("." + target) for name in layers)]
    if unknown:
        raise ConfigError(f"method.target_modules = {setting!r}: this model has no layer called "
                          f"{', '.join(repr(name) for name in unknown)}. Its linear layers are: {', '.join(linear)}. "
                          "Use names from that list, or 'all-linear'.")


def attach_method(model, config: RunConfig, method: str, device: torch.device):
    """Make `model` trainable the way `method` says: every weight (full) or a fresh PEFT adapter."""
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model

    targets = _target_modules(config)
    if method in ("lora", "qlora") and targets != "all-linear":
        _check_target_modules(model, targets, config.method.target_modules)
    model = get_peft_model(model, peft_config_for(config, method))
    if device.type == "cpu":
        from engine.train.dropout import use_word_dropout

        use_word_dropout(model)
    return model


def read_model_config(model_dir: Path | str):
    """The model's transformers configuration; a model that needs its own code says how to allow it."""
    from transformers import AutoConfig

    from engine.models import ModelError

    try:
        return AutoConfig.from_pretrained(str(model_dir), **remote_code.kwargs())
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        files = ", ".join(sorted(p.name for p in Path(model_dir).glob("*.py"))) or "Python files"
        raise ModelError(f"{model_dir}: this model needs its own Python code ({files}) to load, which Tunesmith does "
                         "not run unless asked. If you trust its publisher, turn on model.trust_remote_code "
                         "(tunesmith-cli train --trust-remote-code); that code then runs with your permissions.") from None


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct short names of the model's linear layers (what LoRA target_modules refers to), head excluded."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if module is not head and type(module).__name__ in ("Linear", "Conv1D", "Linear4bit")}
    return sorted(names)


def load_model(config: RunConfig, model_dir: Path, device: torch.device, base_dtype: torch.dtype,
               notice: Callable[[str], None] = lambda message: None) -> LoadedModel:
    """Load the base model for config.method.name on `device` and make the right parameters trainable.

    `base_dtype` is the storage format of the frozen base weights (full fine-tuning always keeps fp32
    master weights). QLoRA falls back to LoRA with a notice where 4-bit is impossible.
    """
    from transformers import AutoModelForCausalLM

    method = config.method.name
    model_config = read_model_config(model_dir)
    kwargs = {"attn_implementation": attention_for(config, model_config), **remote_code.kwargs()}
    if method == "qlora":
        problem = _bnb_problem(device)
        if problem is None:
            try:
                return _load_qlora(config, model_dir, device, kwargs)
            except ConfigError:
                raise
            except (ImportError, RuntimeError, ValueError) as exc:
                problem = f"4-bit loading failed ({str(exc).splitlines()[0][:200]})"
        notice(f"QLoRA is not possible here: {problem}. Training with plain LoRA instead, which needs "
               "more memory but learns the same way.")
        method = "lora"
    dtype = torch.float32 if method == "full" else base_dtype
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, **kwargs).to(device)
    model.config.use_cache = False
    return LoadedModel(attach_method(model, config, method, device), method, False)


def _load_qlora(config: RunConfig, model_dir: Path, device: torch.device, kwargs: dict) -> LoadedModel:
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = quant_compute_dtype(config.method.quant_compute_dtype, device, config.training.precision)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), quantization_config=quant, dtype=compute,
                                                 device_map={"": str(device)}, **kwargs)
    model.config.use_cache = False
    keep_trainable_layout(model)
    # Gradient checkpointing is the loop's decision (only when memory requires), not PEFT's default.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return LoadedModel(attach_method(model, config, "qlora", device), "qlora", True)


def keep_trainable_layout(model: torch.nn.Module) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during a training run.

    On CPUs with AVX512-BF16, the first forward pass in eval mode without gradients (validation, the
    start-of-run check) repacks each 4-bit weight into an inference layout for good; later training
    passes then run through a kernel without a backward, and the gradients of every layer below it
    come out wrong without an error (measured: LoRA gradients off by up to 100%).
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def trainable_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count as the parameters they stand for."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n = int(getattr(p, "quant_state").shape.numel()) if getattr(p, "quant_state", None) else n * 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def count_trainable(config: RunConfig, model_dir: Path | str) -> tuple[int, int]:
    """(trainable, total) parameters for the configured method, from a weightless (meta) model.

    Cheap enough for the window's estimate: nothing is read but config.json.
    """
    from transformers import AutoModelForCausalLM

    model_config = read_model_config(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, **remote_code.kwargs())
        method = "lora" if config.method.name == "qlora" else config.method.name
        if method != "full":
            for p in model.parameters():
                p.requires_grad_(False)
        model = attach_method(model, config, method, torch.device("meta"))
    return trainable_counts(model)
