"""Keep general ability: the KL-to-base term, the cached base answers, and the shipped prompts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine import config as cfg
from engine.train import keep_general as kg

REPO = Path(__file__).resolve().parent.parent


def _lora(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train.methods import attach_method

    config = cfg.RunConfig()
    config.method.lora_dropout = 0.0
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return attach_method(model, config, "lora", torch.device("cpu"))


def _general_batch(model_dir, objective="kl"):
    from engine.templates import load_tokenizer
    from engine.train.batching import make_micro_batches

    tokenizer = load_tokenizer(model_dir)
    rows = [{"prompt": "Write a haiku about rain.", "answer": "Rain taps the window."},
            {"prompt": "Suggest a healthy breakfast.", "answer": "Oats with fruit and a glass of water."}]
    examples = kg.render_answers(rows, tokenizer, max_length=64)
    batch = make_micro_batches(examples, [0, 1], packing=True, max_length=64, micro_batch_size=0, pad_id=0)[0]
    batch.objective = objective
    return batch


def test_kl_to_base_is_zero_while_the_adapter_changes_nothing_and_trains_only_the_adapter(tiny_model_dir):
    import torch

    from engine.train.loss import TokenLoss

    model = _lora(tiny_model_dir)
    loss = TokenLoss(model)
    batch = _general_batch(tiny_model_dir)
    total, count = loss(batch)
    assert count > 0 and abs(float(total.detach())) < 1e-5  # a fresh adapter (B = 0) is the base model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    total, _ = loss(batch)
    assert float(total.detach()) > 1e-3
    total.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert trained and all("lora_" in n for n in trained) and not frozen_with_grad
    assert model.active_adapter == "default"  # the adapter is back on after the base pass


def test_kl_term_needs_an_adapter(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train.loss import TokenLoss

    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    with pytest.raises(ValueError, match="LoRA"):
        TokenLoss(plain)(_general_batch(tiny_model_dir))


def test_steps_draw_general_examples_in_a_seeded_order_that_covers_the_set():
    general = kg.KeepGeneral(examples=list(range(10)), per_step=3, objective="kl", seed=1)
    drawn = [i for step in range(10) for i in general.indices(step)]
    assert sorted(drawn) == sorted(list(range(10)) * 3)
    assert general.indices(4) == kg.KeepGeneral(list(range(10)), 3, "kl", seed=1).indices(4)
    assert kg.KeepGeneral([], 3, "kl").indices(0) == []
    assert kg.objective_for("lora") == kg.objective_for("qlora") == "kl" and kg.objective_for("full") == "replay"


def test_base_answers_are_written_once_per_model_and_read_back(tiny_model_dir, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.evaluate import generate
    from engine.templates import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    prompts = ["Describe a busy market.", "What is a volcano?"]
    notes = []
    monkeypatch.setattr(generate, "generate_batch", lambda *a, **k: ["A lively place.", "A mountain that erupts."])
    rows = kg.base_answers(model, tokenizer, tiny_model_dir, prompts=prompts, notice=notes.append)
    assert rows == [{"prompt": p, "answer": a} for p, a in zip(prompts, ["A lively place.", "A mountain that erupts."])]
    assert len(notes) == 1 and kg.cache_path(tiny_model_dir, tokenizer, prompts).is_file()
    monkeypatch.setattr(generate, "generate_batch", lambda *a, **k: pytest.fail("answers were not cached"))
    assert kg.base_answers(model, tokenizer, tiny_model_dir, prompts=prompts, notice=notes.append) == rows
    assert len(notes) == 1


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _ngrams(text: str, n: int) -> set:
    words = _words(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _yardstick_texts() -> list[str]:
    """Every question the evaluation asks: the generation probe and any shipped benchmark."""
    texts = [item["prompt"] for item in json.loads((REPO / "resources" / "general_probe.json").read_text())["items"]]
    for path in sorted((REPO / "resources" / "benchmarks").glob("**/*.json*")) if (REPO / "resources" / "benchmarks").is_dir() else []:
        raw = path.read_text(encoding="utf-8")
        texts.extend(s for s in re.findall(r'"((?:[^"\\]|\\.){12,})"', raw))
    return texts


def test_shipped_prompts_share_nothing_with_the_yardsticks():
    prompts = kg.load_prompts()
    assert len(prompts) >= 64 and len(set(prompts)) == len(prompts)
    yardsticks = _yardstick_texts()
    assert len(yardsticks) >= 36
    asked = {" ".join(_words(t)) for t in yardsticks}
    grams = set().union(*(_ngrams(t, 6) for t in yardsticks))
    for prompt in prompts:
        assert " ".join(_words(prompt)) not in asked, prompt
        shared = _ngrams(prompt, 6) & grams
        assert not shared, (prompt, shared)
    # the spot check the issue names must stay a fair question
    assert not any("capital" in p.lower() for p in prompts)
