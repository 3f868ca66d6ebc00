"""Each method learns a memorisable toy set and changes only the parameters it is meant to change."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from engine import config as cfg
from engine.train.hardware import choose
from engine.train.loop import TrainingLoop
from engine.train.loss import TokenLoss
from engine.train.methods import count_trainable, keep_trainable_layout, load_model, trainable_counts
from engine.train.rundir import RunFolder

METHOD_LR = {"lora": 1e-1, "qlora": 1e-1, "full": 3e-3, "prefix": 3e-2, "prompt": 1e-1}


def _toy_data(model_dir):
    from engine.templates import load_tokenizer, render
    from engine.data.formats import Example

    tokenizer = load_tokenizer(model_dir)
    examples = [Example(row=i + 1, messages=[{"role": "user", "content": "What is the secret word?"},
                                             {"role": "assistant", "content": "The secret word is pineapple."}])
                for i in range(4)]
    return tokenizer, [render(e, tokenizer, max_length=64) for e in examples]


def _config(method: str) -> cfg.RunConfig:
    config = cfg.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.method.name = method
    config.method.lora_dropout = 0.0
    config.method.num_virtual_tokens = 4
    t = config.training
    t.batch_size, t.lr, t.warmup_ratio, t.scheduler, t.max_grad_norm = 4, METHOD_LR[method], 0.0, "constant", 1.0
    return config


@pytest.mark.parametrize("method", ["lora", "qlora", "full", "prefix", "prompt"])
def test_method_learns_and_touches_only_its_parameters(method, tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    config = _config(method)
    hw = choose("fp32")
    tokenizer, train = _toy_data(tiny_model_dir)
    loaded = load_model(config, tiny_model_dir, hw.device, torch.float32)
    model = loaded.model
    assert loaded.method == method
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable_names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable_names
    events = []
    loop = TrainingLoop(config=config, model=model, loss_module=TokenLoss(model), train=train, val=[], hardware=hw,
                        dist=SimpleNamespace(world=1, main=True, active=False, shard=lambda x: x,
                                             sum=lambda v, d: v, any=lambda f, d: f),
                        folder=RunFolder(tmp_path), emit=events.append, pad_id=tokenizer.pad_token_id,
                        total_steps=10)
    loop.save_every = 10**6
    loop.run(TokenLoss(model))
    losses = [e.loss for e in events if type(e).__name__ == "TrainMetric"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.04, losses  # a random tiny model learns slowly
    for name, p in model.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        if name in trainable_names:
            continue
        assert not moved, f"{method}: frozen parameter {name} changed"
    assert any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if n in trainable_names)
    if method in ("lora", "qlora"):
        assert all("lora_" in n for n in trainable_names)
    if method == "full":
        assert len(trainable_names) == len(before)


@pytest.mark.parametrize("method", ["lora", "full", "prefix", "prompt"])
def test_count_trainable_without_weights_matches_the_loaded_model(method, tiny_model_dir):
    config = _config(method)
    predicted = count_trainable(config, tiny_model_dir)
    loaded = load_model(config, tiny_model_dir, torch.device("cpu"), torch.float32)
    assert predicted == trainable_counts(loaded.model)


def test_lora_settings_shape_the_adapter(tiny_model_dir):
    config = _config("lora")
    config.method.lora_r, config.method.target_modules = 4, "q_proj,v_proj"
    trainable, _ = count_trainable(config, tiny_model_dir)
    # 2 layers x 2 modules x (A: 64x4 + B: 4xout); q_proj out 64, v_proj out 32 (2 kv heads of 16)
    assert trainable == 2 * ((64 * 4 + 4 * 64) + (64 * 4 + 4 * 32))


def test_qlora_falls_back_to_lora_with_a_notice_when_4bit_is_impossible(tiny_model_dir, monkeypatch):
    from engine.train import methods

    monkeypatch.setattr(methods, "_bnb_problem", lambda device: "the bitsandbytes library could not be loaded")
    notices = []
    loaded = load_model(_config("qlora"), tiny_model_dir, torch.device("cpu"), torch.float32, notices.append)
    assert loaded.method == "lora" and not loaded.quantized
    assert len(notices) == 1 and "plain LoRA" in notices[0]


@pytest.mark.slow
def test_qlora_on_the_starter_model_reloads_with_plain_peft(starter_model_dir, tmp_path):
    """A short QLoRA run on the real model; its adapter, reloaded on a fresh 4-bit base, gives the trained logits.

    In fp32 on every machine: the comparison is about the adapter's file format, and under bf16 the
    training model's fp32 norms (PEFT's k-bit preparation) already differ from a plain reload by ~1 logit.
    """
    from peft import PeftModel, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from engine.events import Finished
    from engine.train import checkpoint as ckpt
    from engine.train import run_training
    from engine.train.methods import quant_compute_dtype

    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say the secret word ({i}).", "output": "Pineapple."}) + "\n"
                            for i in range(8)))
    config = cfg.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.method.name, config.model.name, config.data.path = "qlora", str(starter_model_dir), str(data)
    config.data.max_length, config.data.val_fraction, config.out = 48, 0.0, str(tmp_path / "run")
    config.training.max_steps, config.training.batch_size = 2, 4
    config.training.precision = "fp32"
    result = run_training(config, None)
    assert isinstance(result, Finished), result
    run = tmp_path / "run"
    assert json.loads((run / "run-info.json").read_text())["method"] == "qlora"

    compute = quant_compute_dtype("auto", torch.device("cpu"), config.training.precision)
    assert compute == torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    prompt = torch.tensor([[1, 504, 3458, 2030, 314, 253, 1345, 30]])

    def logits_of(model):
        with torch.no_grad():
            return model(input_ids=prompt).logits.float()

    base = AutoModelForCausalLM.from_pretrained(str(starter_model_dir), quantization_config=quant, dtype=compute)
    # The same numerics on both sides: norms in fp32 as the PEFT QLoRA guide prepares them, and the same
    # 4-bit kernels (bitsandbytes' CPU inference layout rounds differently in bf16).
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    keep_trainable_layout(base)
    plain = PeftModel.from_pretrained(base, str(run / "adapter"))
    reloaded = logits_of(plain.eval())
    # the trained weights exactly as the loop left them, put into our own QLoRA model
    trained = load_model(config, starter_model_dir, torch.device("cpu"), torch.float32).model
    ckpt.load_trainable(trained, ckpt.latest_checkpoint(run / "checkpoints"))
    expected = logits_of(trained.eval())
    assert torch.allclose(reloaded, expected, atol=1e-3, rtol=1e-3)
    with plain.disable_adapter():
        assert not torch.allclose(logits_of(plain), expected, atol=1e-3)


def test_qlora_gradients_survive_an_evaluation_pass(tiny_model_dir):
    """bitsandbytes repacks 4-bit weights for CPU inference on the first no-grad eval pass (AVX512-BF16
    CPUs); the training passes after it must still get the same gradients (methods.keep_trainable_layout)."""
    config = _config("qlora")
    config.method.quant_compute_dtype = "fp32"
    loaded = load_model(config, tiny_model_dir, torch.device("cpu"), torch.float32)
    if not loaded.quantized:
        pytest.skip("bitsandbytes cannot load 4-bit weights here")
    model = loaded.model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ids = torch.randint(3, 400, (1, 20), generator=torch.Generator().manual_seed(0))

    def grads():
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    before = grads()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    after = grads()
    for name, grad in before.items():
        assert torch.allclose(grad, after[name], atol=1e-6), name
