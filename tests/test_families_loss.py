"""The compatibility matrix, part 1: for every family and method, our training loss is the model's own.

For each tiny family model (tests/tiny_families.py) and each method, the model is loaded the way a run
loads it (engine.train.methods: the attention the allow-list picks) and the loss module is set up the
way a run sets it up (engine.train.lever_check). Its loss and gradients must equal transformers' own
`model(input_ids, labels=...).loss` computed with the model's own attention: on an unpacked (padded)
batch directly, and on a packed row against the examples one by one. Everything in fp32, so that
"equal" means equal up to float rounding.
"""
from __future__ import annotations

import pytest
import torch

from engine import config as cfg
from engine.train.batching import make_micro_batches
from engine.train.lever_check import attention_as, check_levers, own_attention
from engine.train.loss import TokenLoss, causal_lm_of, uses_packed_kernel
from engine.train.methods import load_model
from tests.tiny_families import FAMILIES, family_examples

METHODS = ("lora", "qlora", "full", "prefix", "prompt")
# Which faster paths each family ends up with on these tiny models (max_length 64): the table in
# docs/MODELS.md. "own" = the model's own attention or loss.
EXPECTED_PATHS = {
    "llama": ("kernel", "fast"), "qwen2": ("kernel", "fast"), "qwen3": ("kernel", "fast"),
    "gemma2": ("own", "own"),  # soft-capped scores and logits, sliding window
    "gemma3": ("own", "fast"),  # sliding window of 8 tokens < 64
    "mistral": ("own", "fast"),  # sliding window of 8 tokens < 64
    "phi3": ("kernel", "fast"), "gpt_neox": ("kernel", "fast"),
}
MAX_LENGTH = 64


def run_config(method: str) -> cfg.RunConfig:
    config = cfg.RunConfig()
    config.method.name = method
    config.method.num_virtual_tokens = 4
    config.method.quant_compute_dtype = "fp32"
    config.data.max_length = MAX_LENGTH
    config.training.precision = "fp32"
    return config


@pytest.fixture(scope="module")
def prepared(family_model_dir):
    """(family, method) -> (loss module, examples, pad id, notice), loaded once per module."""
    from engine.templates import load_tokenizer

    cache = {}

    def get(family: str, method: str):
        if (family, method) not in cache:
            folder = family_model_dir(family)
            tokenizer = load_tokenizer(folder)
            examples = family_examples(tokenizer, MAX_LENGTH)
            config = run_config(method)
            torch.manual_seed(0)
            loaded = load_model(config, folder, torch.device("cpu"), torch.float32)
            if method in ("lora", "qlora"):  # PEFT starts B at zero, which would leave A's gradient zero
                with torch.no_grad():
                    for name, p in loaded.model.named_parameters():
                        if "lora_B" in name:
                            p.normal_(0, 0.05)
            loss = TokenLoss(loaded.model)
            pad_id = tokenizer.pad_token_id or 0
            notice = check_levers(loss, config, examples, pad_id, "fp32")
            cache[family, method] = (loaded, loss, examples, pad_id, notice)
        return cache[family, method]

    return get


def _grads(model) -> dict:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same_grads(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys() and expected
    for name, grad in expected.items():
        scale = float(grad.abs().max()) + 1e-12
        assert float((got[name] - grad).abs().max()) <= 2e-4 * scale + 1e-7, name


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_our_loss_and_gradients_are_the_models_own(family, method, packed, prepared):
    loaded, loss, examples, pad_id, notice = prepared(family, method)
    if method == "qlora" and not loaded.quantized:
        pytest.skip("bitsandbytes cannot load 4-bit weights here")
    model = loaded.model
    lm = causal_lm_of(model)
    prompt_learning = method in ("prefix", "prompt")
    assert notice is None or "on a first batch" not in notice, notice  # the allow-list alone decided
    if not prompt_learning:
        kernel, fast = EXPECTED_PATHS[family]
        assert uses_packed_kernel(model) == (kernel == "kernel")
        assert loss.fast == (fast == "fast")
    else:
        assert not loss.can_pack and not loss.fast and not uses_packed_kernel(model)

    model.eval()  # no dropout: both sides must see the same network
    indices = list(range(len(examples)))
    batches = make_micro_batches(examples, indices, packing=packed and loss.can_pack, max_length=MAX_LENGTH,
                                 micro_batch_size=0, pad_id=pad_id)
    if packed and loss.can_pack:
        assert any(len(row) > 1 for b in batches for row in b.segments), "the examples must share a row"
    total, count = 0.0, 0
    for batch in batches:
        part, n = loss(batch)
        total, count = total + part, count + int(n)
    ours = total / count
    ours.backward()
    our_grads = _grads(model)

    with attention_as(lm, own_attention(lm, "sdpa")):
        if packed:  # the truth for a packed row: each example on its own
            reference = 0.0
            for i in indices:
                ids, labels = torch.tensor([examples[i].input_ids]), torch.tensor([examples[i].labels])
                learned = int((labels[:, 1:] != -100).sum())
                reference = reference + model(input_ids=ids, labels=labels).loss * learned / count
        else:
            (batch,) = make_micro_batches(examples, indices, packing=False, max_length=MAX_LENGTH,
                                          micro_batch_size=0, pad_id=pad_id)
            reference = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              labels=batch.labels).loss
    reference.backward()
    assert float(ours) == pytest.approx(float(reference), rel=2e-5)
    _assert_same_grads(_grads(model), our_grads)
