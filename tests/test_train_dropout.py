"""WordDropout behaves as nn.Dropout: same drop rate, same scaling, same gradients, seeded."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.train.dropout import WordDropout, use_word_dropout


def test_drops_at_the_asked_rate_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    for p in (0.05, 0.3):
        out = WordDropout(p).train()(x)
        dropped = float((out == 0).float().mean())
        assert dropped == pytest.approx(p, abs=0.002)  # a million draws: the standard error is < 0.0005
        assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / (1 - p)))
        # Each 16-bit quarter of the random words drops alike (no biased bits in the words).
        quarters = (out == 0).view(-1, 4).float().mean(0)
        assert torch.allclose(quarters, torch.full_like(quarters, p), atol=0.004)


def test_gradients_follow_the_mask_and_eval_is_identity():
    layer = WordDropout(0.5)
    x = torch.randn(64, 64, requires_grad=True)
    out = layer.train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float() * 2.0)
    assert layer.eval()(x) is x
    assert WordDropout(0.0).train()(x) is x


def test_seeded_runs_draw_the_same_mask():
    x = torch.randn(300, 7)
    torch.manual_seed(3)
    first = WordDropout(0.2).train()(x)
    torch.manual_seed(3)
    assert torch.equal(first, WordDropout(0.2).train()(x))


def test_only_the_lora_dropouts_are_swapped(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.1, target_modules="all-linear"))
    linear_layers = sum(1 for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict))
    assert use_word_dropout(model) == linear_layers > 0
    kinds = {type(d) for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict)
             for d in m.lora_dropout.values()}
    assert kinds == {WordDropout}
