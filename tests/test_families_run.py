"""The compatibility matrix, part 2: every family and method trains, chats and exports as a user does it.

For each tiny family model (tests/tiny_families.py) and method: a two-step run through
`run_training` (the whole engine: template, data, loading, the start-of-run lever check, the loop,
the run folder), chat from the run folder on both sides (base and tuned), and the merged export
reloaded with plain transformers giving the tuned model's logits. Prefix and prompt tuning cannot be
merged, and must say so.
"""
from __future__ import annotations

import json

import pytest
import torch

from engine import config as cfg
from engine.events import Finished, Notice
from tests.test_families_loss import METHODS
from tests.tiny_families import FAMILIES

GREEDY = {"temperature": 0.0, "max_new_tokens": 6, "repetition_penalty": 1.0}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
PROMPT = [{"role": "user", "content": "Give three tips for staying healthy."}]
# Methods whose trainable part is tiny learn nothing visible in two steps at the usual rates; these
# rates make the tuned model differ from the base one after two steps, which is what is checked.
LEARNING_RATES = {"lora": 5e-2, "qlora": 5e-2, "full": 1e-2, "prefix": 1e-1, "prompt": 1e-1}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.jsonl"
    rows = [{"instruction": f"Say the secret word, number {i}.", "output": "The secret word is pineapple."}
            for i in range(8)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def two_step_run(model_dir, data, method: str, out):
    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(model_dir), str(data), str(out)
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.method.name, config.method.num_virtual_tokens = method, 4
    config.data.max_length, config.data.val_fraction = 128, 0.25
    t = config.training
    # precision 'auto' (TUNESMITH_PRECISION picks it in CI): the start-of-run check must hold in bf16 too
    t.max_steps, t.batch_size, t.lr, t.warmup_ratio = 2, 4, LEARNING_RATES[method], 0.0
    events = []
    result = run_training(config, events.append)
    return result, events


def run_training(config, sink):
    from engine.train import run_training as run

    return run(config, sink)


def _logits(model, ids) -> torch.Tensor:
    """Logits at every position of `ids` (prompt tuning's virtual positions left out)."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -len(ids):].float()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_steps_then_chat_then_merged_export(family, method, family_model_dir, toy_data, tmp_path):
    from transformers import AutoModelForCausalLM

    from engine.evaluate import ChatModel, GenerationSettings
    from engine.export import ExportError, export_run

    result, events = two_step_run(family_model_dir(family), toy_data, method, tmp_path / "run")
    assert isinstance(result, Finished), result
    assert result.reason == "completed" and result.step == 2
    info = json.loads((tmp_path / "run" / "run-info.json").read_text())
    if method == "qlora" and info["method"] == "lora":
        assert any("QLoRA is not possible here" in e.message for e in events if isinstance(e, Notice))
    fallbacks = [e.message for e in events if isinstance(e, Notice) and "model trains with" in e.message]
    assert len(fallbacks) <= 1  # said once
    assert not any("on a first batch" in message for message in fallbacks), fallbacks  # the allow-list decided

    chat = ChatModel(tmp_path / "run", weights="fp32")  # exact weights: the merged copy is compared to 1e-4
    settings = GenerationSettings.from_dict(GREEDY)
    answers = {side: chat.reply(QUESTION, side, settings) for side in ("base", "tuned")}
    assert all(isinstance(text, str) for text in answers.values())
    ids = chat.prompt_ids(PROMPT)
    with chat.loaded.side("base") as base:
        base_logits = _logits(base, ids)
    with chat.loaded.side("tuned") as tuned:
        tuned_logits = _logits(tuned, ids)
    # all positions: with a sliding window, virtual tokens reach only the first few
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-4), "two steps must change the model"

    if method in ("prefix", "prompt"):
        with pytest.raises(ExportError, match="virtual tokens"):
            export_run(tmp_path / "run", "merged", tmp_path / "merged")
        return
    merged = export_run(tmp_path / "run", "merged", tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    assert torch.allclose(_logits(reloaded, ids), tuned_logits, rtol=1e-4, atol=1e-4)
