"""Per-example attention over packed rows gives the numbers of the masked row, gradients included."""
from __future__ import annotations

import pytest
import torch

from engine.config import RunConfig
from engine.train import attention
from engine.train.batching import collate_padded, make_micro_batches
from engine.train.loss import TokenLoss
from engine.train.methods import attention_for
from tests.test_train_batching import _items


def _model(tiny_model_dir, implementation):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation=implementation)


@pytest.fixture(scope="module")
def pair(tiny_model_dir):
    """The same weights twice: transformers' SDPA with its block mask, and the per-example path."""
    return _model(tiny_model_dir, "sdpa"), _model(tiny_model_dir, attention.register())


def _loss_and_grads(model, batches, drop_segments=False):
    model.zero_grad()
    loss = TokenLoss(model)
    total, count = 0.0, 0
    for batch in batches:
        if drop_segments:  # the attention then reads the examples off the position ids
            batch.segments = None
        part, n = loss(batch)
        part.backward()
        total, count = total + float(part.detach()), count + int(n)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return total / count, grads


@pytest.mark.parametrize("drop_segments", [False, True])
def test_packed_rows_match_the_block_masked_row(pair, drop_segments):
    reference, packed = pair
    items = _items([20, 25, 30, 8, 17, 12, 5], seed=4)

    def batches():  # rows of at most 40 tokens, two rows per pass, padding tails included
        return make_micro_batches(items, list(range(len(items))), packing=True, max_length=40,
                                  micro_batch_size=2, pad_id=0)

    assert any(len(row) > 2 for b in batches() for row in b.segments)  # really packed, with a padding tail
    expected, expected_grads = _loss_and_grads(reference, batches())
    got, grads = _loss_and_grads(packed, batches(), drop_segments)
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected_grads.keys() == grads.keys()
    for name, grad in expected_grads.items():
        assert torch.allclose(grad, grads[name], rtol=1e-4, atol=1e-6), name


def test_padded_batches_still_get_the_padding_mask(pair):
    reference, packed = pair
    items = _items([12, 5, 9], seed=5)
    expected, _ = _loss_and_grads(reference, [collate_padded(items, [0, 1, 2], pad_id=0)])
    got, _ = _loss_and_grads(packed, [collate_padded(items, [0, 1, 2], pad_id=0)])
    assert got == pytest.approx(expected, rel=1e-5)


def test_segment_bounds_cut_where_positions_restart():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]])
    assert attention.segment_bounds(positions, 6) == [[(0, 3), (3, 5), (5, 6)], [(0, 6)]]


def test_only_packed_token_methods_get_the_per_example_kernel():
    config = RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    assert attention_for(config) == attention.PACKED_SDPA
    config.training.packing = False
    assert attention_for(config) == "sdpa"
    config.training.packing = True
    config.method.name = "prompt"
    assert attention_for(config) == "sdpa"
    config.method.name = "lora"
    config.training.attention = "eager"
    assert attention_for(config) == "eager"
