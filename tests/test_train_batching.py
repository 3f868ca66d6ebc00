"""Packing, the example order and the fast loss path give the same numbers as the plain way."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from engine.train.batching import (IGNORE_INDEX, collate_padded, make_micro_batches, pack_rows, step_examples)
from engine.train.loss import TokenLoss


@dataclass
class Item:
    input_ids: list
    labels: list


def _items(lengths, vocab=500, prompt=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        items.append(Item(ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return items


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation="sdpa")
    return model.eval()


def test_pack_rows_fits_capacity_and_keeps_every_item():
    lengths = [50, 30, 20, 70, 10, 40]
    rows = pack_rows(lengths, 100)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3  # 220 tokens need at least 3 rows of 100


def test_step_order_is_reproducible_and_covers_each_epoch():
    first = [step_examples(10, 4, seed=7, step=s) for s in range(3)]
    again = [step_examples(10, 4, seed=7, step=s) for s in range(3)]
    assert first == again
    assert sorted(i for _, idx in first for i in idx) == list(range(10))
    assert step_examples(10, 4, seed=7, step=3)[0] == 1  # the next epoch
    assert step_examples(10, 4, seed=8, step=0) != first[0]


def test_packed_rows_do_not_attend_across_examples(tiny_model):
    """A packed row gives each example exactly the loss it has on its own (block-diagonal attention)."""
    items = _items([9, 14, 6, 11])
    loss = TokenLoss(tiny_model)
    with torch.no_grad():
        separate = [loss(collate_padded(items, [i], pad_id=0)) for i in range(len(items))]
        expected = sum(float(s) for s, _ in separate) / sum(int(n) for _, n in separate)
        packed = make_micro_batches(items, list(range(4)), packing=True, max_length=64, micro_batch_size=0, pad_id=0)
        assert len(packed) == 1 and packed[0].input_ids.shape[0] == 1  # all four in one row
        total, count = loss(packed[0])
    assert int(count) == sum(int(n) for _, n in separate)
    assert float(total) / int(count) == pytest.approx(expected, rel=1e-5)


def test_packing_across_several_rows_and_micro_batches_gives_the_same_loss(tiny_model):
    items = _items([20, 25, 30, 8, 17, 12], seed=1)
    results = []
    with torch.no_grad():
        for fast in (True, False):  # the plain forward honours packed position ids too
            loss = TokenLoss(tiny_model, fast=fast)
            for packing, micro in ((True, 1), (True, 0), (False, 2), (False, 0)):
                batches = make_micro_batches(items, list(range(6)), packing=packing, max_length=40,
                                             micro_batch_size=micro, pad_id=0)
                sums = [loss(b) for b in batches]
                results.append(sum(float(s) for s, _ in sums) / sum(int(n) for _, n in sums))
    assert results == pytest.approx([results[0]] * 8, rel=1e-5)


def test_fast_path_equals_the_models_own_loss(tiny_model):
    """Hidden states gathered at labelled positions + chunked head == model(input_ids, labels).loss."""
    items = _items([12, 12, 12], seed=2)
    batch = collate_padded(items, [0, 1, 2], pad_id=0)
    fast = TokenLoss(tiny_model, chunk_tokens=7)  # several chunks
    assert fast.fast
    with torch.no_grad():
        total, count = fast(batch)
        reference = tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               labels=batch.labels).loss
    assert float(total) / int(count) == pytest.approx(float(reference), rel=1e-5)


@pytest.mark.parametrize("keep_logits_bytes", [0, 2**30])  # recomputed in backward, or kept
def test_fast_path_gradients_match_the_plain_path(tiny_model, keep_logits_bytes, monkeypatch):
    monkeypatch.setattr("engine.train.loss.KEEP_LOGITS_BYTES", keep_logits_bytes)
    items = _items([10, 7], seed=3)
    batch = collate_padded(items, [0, 1], pad_id=0)
    grads = []
    for fast in (True, False):
        tiny_model.zero_grad()
        total, count = TokenLoss(tiny_model, fast=fast, chunk_tokens=4)(batch)
        (total / count).backward()
        grads.append(tiny_model.model.layers[0].mlp.up_proj.weight.grad.clone())
    tiny_model.zero_grad()
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_shifted_targets_never_cross_into_the_next_packed_example():
    items = _items([5, 5], prompt=0)
    batch = make_micro_batches(items, [0, 1], packing=True, max_length=10, micro_batch_size=0, pad_id=0)[0]
    targets = batch.targets[0].tolist()
    assert targets[4] == IGNORE_INDEX  # last token of the first example predicts nothing
    assert targets[:4] == items[0].input_ids[1:]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
