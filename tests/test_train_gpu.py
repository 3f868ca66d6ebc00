"""Training on CUDA: bf16 everywhere it should be, QLoRA's 4-bit layers computing in bf16, memory figures."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _toy(path, n=16):
    path.write_text("".join(json.dumps({"instruction": f"Question {i}: the secret word?", "output": "Pineapple."})
                            + "\n" for i in range(n)))
    return path


def _config(model_dir, data, out, method="lora"):
    from engine import config as cfg

    config = cfg.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.model.name, config.data.path, config.out, config.method.name = str(model_dir), str(data), str(out), method
    config.data.max_length, config.training.batch_size, config.training.max_steps = 64, 4, 4
    return config


def test_lora_trains_on_cuda_in_bf16(tiny_model_dir, tmp_path):
    from engine.events import Finished, Started, TrainMetric
    from engine.train import run_training

    events = []
    result = run_training(_config(tiny_model_dir, _toy(tmp_path / "t.jsonl"), tmp_path / "run"), events.append)
    assert isinstance(result, Finished), result
    started = next(e for e in events if isinstance(e, Started))
    assert "CUDA" in started.device and "bf16" in started.device
    losses = [e.loss for e in events if isinstance(e, TrainMetric)]
    assert all(map(lambda x: x == x, losses))  # no NaN under bf16 autocast


def test_qlora_on_cuda_computes_in_bf16_and_trains(tiny_model_dir, tmp_path):
    bnb = pytest.importorskip("bitsandbytes")
    from engine.train.hardware import choose
    from engine.train.methods import load_model

    config = _config(tiny_model_dir, "unused", tmp_path / "run", method="qlora")
    loaded = load_model(config, tiny_model_dir, choose("auto").device, torch.bfloat16)
    assert loaded.method == "qlora" and loaded.quantized
    four_bit = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all(m.compute_dtype == torch.bfloat16 for m in four_bit)

    from engine.events import Finished
    from engine.train import run_training

    result = run_training(_config(tiny_model_dir, _toy(tmp_path / "t.jsonl"), tmp_path / "run2", "qlora"), None)
    assert isinstance(result, Finished), result


def test_memory_estimate_matches_cuda_peak_for_a_starter_shaped_model(tmp_path):
    """A model with the starter's shape (random weights): the estimate is within 20% of the allocator's peak."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tiny_model import build_tokenizer
    from engine.train import memcheck

    tokenizer = build_tokenizer()
    shape = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                        max_position_embeddings=2048)
    folder = tmp_path / "starter-shaped"
    AutoModelForCausalLM.from_config(shape).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.cuda.reset_peak_memory_stats()
    out = tmp_path / "report.txt"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        memcheck.main([str(folder), "--out", str(tmp_path / "run"), "--steps", "2"])
    report = json.loads(buffer.getvalue().strip().splitlines()[-1])
    out.write_text(json.dumps(report))
    assert report["result"] == "Finished"
    assert abs(report["error_percent"]) <= 20, report


@pytest.mark.parametrize("lever", ["training.optimizer=paged_adamw_8bit", "training.compile=on",
                                   "training.fused_kernels=on"])
def test_each_gpu_lever_trains_to_the_same_place(tiny_model_dir, tmp_path, lever):
    """Issue 15's levers on CUDA: each run finishes without a fallback notice, and its losses stay close to the default's."""
    from engine.events import Finished, Notice, TrainMetric
    from engine.train import run_training

    key, value = lever.split("=")
    losses = {}
    for name, setting in (("default", None), ("lever", value)):
        config = _config(tiny_model_dir, _toy(tmp_path / "t.jsonl"), tmp_path / name)
        if setting:
            setattr(config.training, key.split(".")[1], setting)
        events = []
        result = run_training(config, events.append)
        assert isinstance(result, Finished), result
        if setting:
            assert not [e.message for e in events if isinstance(e, Notice) and "not" in e.message], lever
        losses[name] = [e.loss for e in events if isinstance(e, TrainMetric)]
    assert abs(losses["lever"][-1] - losses["default"][-1]) < 0.05 * losses["default"][0], losses
