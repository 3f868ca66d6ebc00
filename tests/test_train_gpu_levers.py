"""GPU speed and memory levers, checked on the CPU: when each is chosen, and that it keeps the maths.

The speed itself is measured on a lent GPU by bench/gpu_session.sh (see BENCHMARKS.md).
"""
from __future__ import annotations

import pytest
import torch

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_optimizer_takes_paged_8bit_only_for_many_weights_on_a_gpu(monkeypatch):
    from engine.train import optimizers
    from engine.train.optimizers import EIGHT_BIT_FROM_PARAMS, choose_optimizer

    monkeypatch.setattr(optimizers, "_bitsandbytes_problem", lambda device, paged: "")
    assert choose_optimizer("auto", CUDA, EIGHT_BIT_FROM_PARAMS) == "paged_adamw_8bit"
    assert choose_optimizer("auto", CUDA, 5_000_000) == "adamw", "LoRA's states are a few MB: nothing to save"
    assert choose_optimizer("auto", CPU, EIGHT_BIT_FROM_PARAMS) == "adamw"
    assert choose_optimizer("adamw_8bit", CPU, 10) == "adamw_8bit"
    monkeypatch.setattr(optimizers, "_bitsandbytes_problem", lambda device, paged: "no bitsandbytes")
    assert choose_optimizer("auto", CUDA, EIGHT_BIT_FROM_PARAMS) == "adamw"


def _steps(optimizer_setting: str, notices: list) -> torch.Tensor:
    from engine.train.optimizers import make_optimizer

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 128))  # 8192 values: bitsandbytes quantizes the states
    target = torch.randn(64, 128)
    optimizer = make_optimizer(optimizer_setting, [weight], CPU, lr=1e-2, weight_decay=0.0, notice=notices.append)
    for _ in range(5):
        loss = ((weight - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return weight.detach(), type(optimizer).__name__


def test_8bit_adamw_follows_adamw_and_paged_falls_back_on_a_cpu():
    notices: list = []
    exact, kind = _steps("adamw", notices)
    assert kind == "AdamW"
    eight, kind = _steps("adamw_8bit", notices)
    assert kind == "AdamW8bit" and not notices
    torch.manual_seed(0)
    moved = (exact - torch.randn(64, 128)).abs().mean()  # how far AdamW took the weights in 5 steps
    assert (eight - exact).abs().mean() < 0.05 * moved, "8-bit states: the same steps up to their rounding"
    paged, kind = _steps("paged_adamw_8bit", notices)
    assert kind == "AdamW" and torch.equal(paged, exact)
    assert notices and "paged optimizers need a CUDA GPU" in notices[0]


def test_fused_kernels_only_on_cuda_for_supported_families():
    from engine.train.kernels import use_fused_kernels

    assert use_fused_kernels("auto", CUDA, "llama", available=True) == (True, "")
    assert use_fused_kernels("auto", CPU, "llama", available=True) == (False, "")
    assert use_fused_kernels("auto", CUDA, "gpt2", available=True) == (False, "")
    assert use_fused_kernels("auto", CUDA, "llama", available=False) == (False, ""), "auto stays quiet"
    assert use_fused_kernels("off", CUDA, "llama", available=True) == (False, "")
    use, why = use_fused_kernels("on", CUDA, "llama", available=False)
    assert not use and "pip install 'tunesmith[gpu]'" in why
    assert "CUDA" in use_fused_kernels("on", CPU, "llama", available=True)[1]
    assert "'gpt2'" in use_fused_kernels("on", CUDA, "gpt2", available=True)[1]


def test_compiled_decoder_layers_give_the_same_loss_and_gradients(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.train.kernels import apply_fused_kernels, compile_decoder_layers

    def loss_and_grads(compiled: bool):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
        notices: list = []
        assert not apply_fused_kernels(model, "on", CPU, notice=notices.append) and "CUDA" in notices[0]
        if compiled:
            # The compiler's eager backend runs the captured graphs as they are: it checks the wiring
            # (every layer compiled, dynamic lengths) without a C++ build; inductor runs on the GPU.
            assert compile_decoder_layers(model, "on", CPU, notice=notices.append) == 0, "never inductor on a CPU"
            assert compile_decoder_layers(model, "on", CPU, backend="eager") == 2
        losses = []
        for length in (9, 13):  # two lengths: the compiled layers take dynamic shapes
            ids = torch.randint(0, 200, (2, length))
            losses.append(model(input_ids=ids, labels=ids).loss)
        sum(losses).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return torch.stack([loss.detach() for loss in losses]), grads

    torch._dynamo.reset()
    plain, plain_grads = loss_and_grads(False)
    compiled, compiled_grads = loss_and_grads(True)
    assert torch.allclose(plain, compiled, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain_grads, compiled_grads))
    torch._dynamo.reset()


def test_levers_are_settings_with_safe_defaults():
    import dataclasses

    from engine.config import TrainingConfig

    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    defaults = TrainingConfig()
    assert (defaults.optimizer, defaults.fused_kernels, defaults.compile) == ("auto", "auto", "off")
    assert fields["optimizer"].metadata["choices"] == ("auto", "adamw", "adamw_8bit", "paged_adamw_8bit")
