"""How much memory a run will need, before anything is loaded (the window shows this).

estimate = runtime + weights + trainable state (weights, gradients, AdamW moments)
         + activations kept for the backward pass (per token, per layer) + the loss's logits chunk.
On the CPU it predicts peak resident memory (RSS) of the training process, so it includes the
Python/PyTorch runtime itself; on CUDA it predicts peak allocated GPU memory.
The per-token coefficients were calibrated against measured peaks (see bench/ notes in the report).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from engine import remote_code
from engine.config import RunConfig

# Resident memory of a process that has imported torch, transformers and peft (measured: ~390 MB).
CPU_RUNTIME_BYTES = 400 * 2**20
# CUDA context and kernels are outside torch's allocator; this is what the allocator adds on top.
CUDA_OVERHEAD_BYTES = 64 * 2**20
# Floats kept per token per decoder layer for the backward pass, as multiples of the layer widths:
# hidden-sized tensors (norms, projections in/out, residuals, LoRA dropout copies) and MLP-sized ones.
# Calibrated on a starter-shaped model (engine.train.memcheck): on the CPU, LoRA keeps three more
# MLP-wide tensors per layer than on CUDA (its dropout copies and masks are not fused there).
# Measured (peak RSS, LoRA, batch 8 x 512, fp32): 13470 MiB on the AVX2 workstation (torch 2.13), 12233 MiB
# on a 16-core Xeon (torch 2.11); this estimate says 12364 MiB.
HIDDEN_FLOATS_LORA, HIDDEN_FLOATS_FROZEN, MLP_FLOATS = 16, 10, 6
CPU_LORA_EXTRA_MLP_FLOATS = 3
# Adapters on a CPU hold about 10 more bytes per frozen weight than the terms above explain, whatever
# the pass size (fitted on the starter model, LoRA fp32, 512-token rows: peak RSS 5825 MiB at 1024
# tokens per pass and 13470 MiB at 4096; the cause is not isolated, oneDNN's reordered weight
# copies being the likely part). Without it the estimate was 27% low at the default pass size.
CPU_ADAPTER_BYTES_PER_BASE_PARAM = 10
# Under bf16 autocast the norms, residual stream and softmax stay fp32: measured about 3 bytes per
# kept float on the CPU, 2 on CUDA.
MIXED_BYTES = {"cpu": 3, "cuda": 2}
CHECKPOINTED_HIDDEN_FLOATS = 2  # with gradient checkpointing only each layer's input is kept
LOGIT_CHUNK_TOKENS = 1024  # engine.train.loss.CHUNK_TOKENS
ADAM_BYTES_PER_PARAM = 8  # two fp32 moments


def _bytes_per_base_param(method: str, precision: str) -> float:
    if method == "qlora":
        return 0.5 + 0.5 / 64 + 4 / 4096  # NF4 + fp8 absmax per 64 + double-quant constants
    if method == "full":
        return 4.0
    return 2.0 if precision == "bf16" else 4.0


def _shape(model_config) -> dict:
    hidden = model_config.hidden_size
    heads = model_config.num_attention_heads
    head_dim = getattr(model_config, "head_dim", None) or hidden // heads
    return {"hidden": hidden, "mlp": getattr(model_config, "intermediate_size", 4 * hidden),
            "layers": model_config.num_hidden_layers, "vocab": model_config.vocab_size,
            "heads": heads, "head_dim": head_dim}


def _activation_bytes(config: RunConfig, shape: dict, tokens: int, act_bytes: int, checkpointing: bool,
                      device_type: str) -> int:
    method = config.method.name
    mlp_floats = MLP_FLOATS
    if method in ("lora", "qlora") and device_type == "cpu":
        mlp_floats += CPU_LORA_EXTRA_MLP_FLOATS
    if checkpointing:
        per_layer = CHECKPOINTED_HIDDEN_FLOATS * shape["hidden"]
        # one layer is recomputed at a time: its full activations exist once
        recompute = tokens * (HIDDEN_FLOATS_LORA * shape["hidden"] + mlp_floats * shape["mlp"]) * act_bytes
    else:
        hidden_floats = HIDDEN_FLOATS_LORA if method in ("lora", "qlora") else HIDDEN_FLOATS_FROZEN
        per_layer = hidden_floats * shape["hidden"] + mlp_floats * shape["mlp"]
        recompute = 0
    layers = tokens * per_layer * shape["layers"] * act_bytes + recompute
    # logits of one chunk in the compute format and in fp32, plus the fp32 gradient of the softmax
    logits = min(tokens, LOGIT_CHUNK_TOKENS) * shape["vocab"] * (act_bytes + 8)
    if method in ("prefix", "prompt"):  # these take the plain path: full-sequence fp32 logits
        logits = tokens * shape["vocab"] * (act_bytes + 8)
    return int(layers + logits)


def estimate_from_counts(config: RunConfig, model_config, trainable: int, total: int, device: str | torch.device,
                         tokens_per_pass: Optional[int] = None, checkpointing: Optional[bool] = None) -> int:
    """The estimate, given parameter counts (see estimate_memory)."""
    device = torch.device(device)
    method, t = config.method.name, config.training
    from engine.train.hardware import resolve_precision

    precision = resolve_precision(t.precision, device)
    act_bytes = 4 if precision == "fp32" else MIXED_BYTES.get(device.type, 2)
    shape = _shape(model_config)
    if tokens_per_pass is None:
        from engine.train.batching import auto_micro_batch

        per_pass = auto_micro_batch(t.micro_batch_size, config.data.max_length, device.type)
        tokens_per_pass = min(per_pass or t.batch_size, t.batch_size) * config.data.max_length
        if t.objective != "sft":  # preference pairs stay whole: both answers of a pair share a pass
            tokens_per_pass = max(tokens_per_pass * (1 if per_pass else 2), 2 * config.data.max_length)
    base = total - trainable if method != "full" else 0
    weights = base * _bytes_per_base_param(method, precision)
    trainable_state = trainable * (4 + 4 + ADAM_BYTES_PER_PARAM)  # fp32 weights, gradients, moments
    if checkpointing is None:
        checkpointing = t.gradient_checkpointing == "on"
    activations = _activation_bytes(config, shape, tokens_per_pass, act_bytes, checkpointing, device.type)
    overhead = CPU_RUNTIME_BYTES if device.type == "cpu" else CUDA_OVERHEAD_BYTES
    if device.type == "cpu" and method in ("lora", "qlora"):
        overhead += base * CPU_ADAPTER_BYTES_PER_BASE_PARAM
    return int(overhead + weights + trainable_state + activations)


def estimate_memory(config: RunConfig, model_dir: Path | str, device: str | torch.device = "cpu",
                    tokens_per_pass: Optional[int] = None) -> int:
    """Predicted peak memory in bytes for training `config` on `device` (no weights are loaded).

    tokens_per_pass: tokens in one forward pass when known from the data; by default the worst
    case, (micro-)batch size x max length.
    """
    from transformers import AutoConfig

    from engine.train.methods import count_trainable

    with remote_code.allowed(config.model.trust_remote_code):
        trainable, total = count_trainable(config, model_dir)
        model_config = AutoConfig.from_pretrained(str(model_dir), **remote_code.kwargs())
    return estimate_from_counts(config, model_config, trainable, total, device, tokens_per_pass)


def estimate_per_method(config: RunConfig, model_dir: Path | str, device: str | torch.device,
                        methods: tuple = ("lora", "qlora")) -> dict:
    """{method: estimated peak bytes} for several methods, building the weightless model once.

    LoRA and QLoRA train the same adapter (QLoRA only stores the base in 4 bits), so one count serves both.
    """
    import copy

    from transformers import AutoConfig

    from engine.train.methods import count_trainable

    model_config = AutoConfig.from_pretrained(str(model_dir))
    counts: dict = {}
    found = {}
    for method in dict.fromkeys(methods):
        trial = copy.deepcopy(config)
        trial.method.name = method
        family = "lora" if method in ("lora", "qlora") else method
        if family not in counts:
            counts[family] = count_trainable(trial, model_dir)
        trainable, total = counts[family]
        found[method] = estimate_from_counts(trial, model_config, trainable, total, device)
    return found


def estimate_memory_for_model(config: RunConfig, model: torch.nn.Module, device: torch.device) -> int:
    """The same estimate for a model already loaded (used to decide on gradient checkpointing)."""
    from engine.train.loss import causal_lm_of
    from engine.train.methods import trainable_counts

    trainable, total = trainable_counts(model)
    return estimate_from_counts(config, causal_lm_of(model).config, trainable, total, device, checkpointing=False)


def available_memory(device: torch.device) -> int:
    """Memory this run may still use: free GPU memory, or available system memory (plus what we hold)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.virtual_memory().available + psutil.Process().memory_info().rss)
