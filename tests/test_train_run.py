"""run_training end to end on the tiny model: run folder, stop/resume, early stopping, NaN, bad configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import config as cfg
from engine.events import EvalMetric, Failed, Finished, FirstLoss, Started, TrainMetric, read_events
from engine.train import run_training
from engine.train import checkpoint as ckpt


def write_chat_jsonl(path: Path, pairs) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for question, answer in pairs:
            fh.write(json.dumps({"messages": [{"role": "user", "content": question},
                                              {"role": "assistant", "content": answer}]}) + "\n")
    return path


def toy_pairs(n: int, answer: str = "The secret word is pineapple."):
    return [(f"Question {i}: what is the secret word?", answer) for i in range(n)]


def make_config(model_dir, data_path, out, **training) -> cfg.RunConfig:
    config = cfg.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.model.name = str(model_dir)
    config.data.path = str(data_path)
    config.data.max_length = 64
    config.out = str(out)
    config.training.batch_size = 4
    config.training.lr = 2e-3
    config.training.warmup_ratio = 0.0
    config.method.lora_dropout = 0.1  # exercises the RNG state in resume
    # The general-knowledge curve has its own tests (test_general_curve.py); on the tiny model's small
    # vocabulary the benchmark's questions are long, which would slow every other test here.
    config.training.general_curve = False
    for key, value in training.items():
        setattr(config.training, key, value)
    return config


class Recorder:
    def __init__(self, stop_at_step=None, stop=None):
        self.events, self.stop_at_step, self.stop = [], stop_at_step, stop

    def __call__(self, event):
        self.events.append(event)
        if self.stop_at_step and isinstance(event, TrainMetric) and event.step == self.stop_at_step:
            self.stop.set()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def test_lora_run_writes_the_documented_folder_and_a_plain_peft_adapter(tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(24))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=6, eval_every=3)
    rec = Recorder()
    result = run_training(config, rec)
    assert isinstance(result, Finished) and result.reason == "completed", result
    run = tmp_path / "run"
    for name in ("run.yaml", "run-info.json", "metrics.jsonl", "val.jsonl", "test.jsonl", "checkpoints", "adapter",
                 "tokenizer"):
        assert (run / name).exists(), name
    info = json.loads((run / "run-info.json").read_text())
    assert info["status"] == "completed" and info["method"] == "lora" and info["best_step"] == result.best_step
    assert Path(info["base_model_path"]) == Path(tiny_model_dir)
    assert cfg.load(run / "run.yaml").training.max_steps == 6
    started = rec.of(Started)[0]
    assert 0 < started.trainable_params < started.total_params and started.total_steps == 6
    assert [e.step for e in rec.of(EvalMetric)] == [3, 6]
    # The first loss comes after one pass (one row of the first step's near-identical examples), before
    # any step ends, so it is close to the first step's loss.
    first_loss = rec.of(FirstLoss)
    assert len(first_loss) == 1 and first_loss[0].step == 0
    assert rec.events.index(first_loss[0]) < rec.events.index(rec.of(TrainMetric)[0])
    assert first_loss[0].loss == pytest.approx(rec.of(TrainMetric)[0].loss, rel=0.01)
    logged = read_events(run / "metrics.jsonl")
    assert [type(e).__name__ for e in logged] == [type(e).__name__ for e in rec.events]
    assert len((run / "val.jsonl").read_text().splitlines()) == started.val_examples
    # The test rows are kept aside: neither trained on nor used for validation.
    test_rows = [json.loads(line)["row"] for line in (run / "test.jsonl").read_text().splitlines()]
    val_rows = [json.loads(line)["row"] for line in (run / "val.jsonl").read_text().splitlines()]
    assert len(test_rows) == started.test_examples == 4 and not set(test_rows) & set(val_rows)
    assert started.train_examples + started.val_examples + started.test_examples == 24
    assert (run / "tokenizer" / "tokenizer_config.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tuned = PeftModel.from_pretrained(base, str(run / "adapter"))
    ids = torch.tensor([[1, 5, 9, 13]])
    assert torch.isfinite(tuned(input_ids=ids).logits).all()


def test_stop_then_resume_continues_the_same_loss_curve(tiny_model_dir, tmp_path):
    import threading

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(20) + toy_pairs(12, "Another answer entirely."))
    whole = Recorder()
    run_training(make_config(tiny_model_dir, data, tmp_path / "whole", max_steps=8, eval_every=2), whole)

    stop = threading.Event()
    first = Recorder(stop_at_step=3, stop=stop)
    config = make_config(tiny_model_dir, data, tmp_path / "split", max_steps=8, eval_every=2)
    stopped = run_training(config, first, stop=stop)
    assert isinstance(stopped, Finished) and stopped.reason == "stopped" and stopped.step == 3
    assert (tmp_path / "split" / "adapter" / "adapter_config.json").is_file()  # usable right away
    assert json.loads((tmp_path / "split" / "run-info.json").read_text())["status"] == "stopped"

    second = Recorder()
    resumed = run_training(config, second, resume_from=tmp_path / "split")
    assert isinstance(resumed, Finished) and resumed.reason == "completed" and resumed.step == 8
    assert [e.step for e in second.of(TrainMetric)] == [4, 5, 6, 7, 8]
    assert [e.step for e in second.of(FirstLoss)] == [3]  # where the resumed curve starts
    expected = {e.step: e.loss for e in whole.of(TrainMetric)}
    for event in first.of(TrainMetric) + second.of(TrainMetric):
        assert event.loss == pytest.approx(expected[event.step], rel=1e-4), event.step
    assert second.of(EvalMetric)[-1].val_loss == pytest.approx(whole.of(EvalMetric)[-1].val_loss, rel=1e-4)


def test_a_checkpoint_left_incomplete_by_a_kill_is_ignored_and_removed(tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=4, save_every=2, eval_every=2)
    run_training(config, None)
    checkpoints = tmp_path / "run" / "checkpoints"
    half = checkpoints / ckpt.checkpoint_name(3)  # looks like a checkpoint, but state.json never got written
    half.mkdir()
    (half / ckpt.WEIGHTS_FILE).write_bytes(b"torn")
    temp = checkpoints / (ckpt.TEMP_PREFIX + ckpt.checkpoint_name(5))
    temp.mkdir()
    config.training.max_steps = 6
    rec = Recorder()
    result = run_training(config, rec, resume_from=tmp_path / "run")
    assert isinstance(result, Finished) and result.step == 6
    assert not half.exists() and not temp.exists()
    assert [e.step for e in rec.of(TrainMetric)] == [5, 6]  # resumed from step 4, not the torn step 3


def test_early_stopping_keeps_the_best_checkpoint_as_the_adapter(tiny_model_dir, tmp_path):
    """Validation answers differ from the training ones: memorising the training answer makes it worse."""
    train = write_chat_jsonl(tmp_path / "train.jsonl", toy_pairs(16, "Alpha alpha alpha."))
    val = write_chat_jsonl(tmp_path / "val.jsonl", toy_pairs(4, "Zebra zebra zebra."))
    config = make_config(tiny_model_dir, train, tmp_path / "run", max_steps=40, eval_every=1,
                         early_stopping_patience=2, lr=5e-2)
    config.data.val_path = str(val)
    rec = Recorder()
    result = run_training(config, rec)
    assert isinstance(result, Finished) and result.reason == "early_stopped", result
    evals = rec.of(EvalMetric)
    best = min(evals, key=lambda e: e.val_loss)
    assert result.best_step == best.step < result.step
    assert evals[-1].best_step == best.step
    assert result.step - best.step == 2
    info = json.loads((tmp_path / "run" / "run-info.json").read_text())
    assert info["best_step"] == best.step and info["status"] == "early_stopped"
    assert (tmp_path / "run" / "checkpoints" / ckpt.checkpoint_name(best.step)).is_dir()
    _assert_adapter_equals_checkpoint(tmp_path / "run", best.step)


def _assert_adapter_equals_checkpoint(run: Path, step: int) -> None:
    from safetensors.torch import load_file

    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    saved = load_file(str(run / "checkpoints" / ckpt.checkpoint_name(step) / ckpt.WEIGHTS_FILE))
    assert len(adapter) == len(saved)
    for name, tensor in saved.items():
        short = name.replace("base_model.model.", "", 1).replace(".default", "")
        match = [v for k, v in adapter.items() if k.endswith(short)]
        assert match and (match[0] == tensor).all(), name


def test_nan_loss_stops_with_an_explanation_and_keeps_the_last_good_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=10, save_every=1, eval_every=100,
                         max_grad_norm=0.0)
    config.method.name = "full"
    config.training.lr = 1e30  # refused by validation; set through the back door to force a blow-up
    monkeypatch.setattr(cfg, "validate", lambda config: [])
    rec = Recorder()
    result = run_training(config, rec)
    assert isinstance(result, Failed), result
    assert "learning rate" in result.hint.lower() and "not a number" in result.reason
    info = json.loads((tmp_path / "run" / "run-info.json").read_text())
    assert info["status"] == "failed"
    good = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert good and ckpt.step_of(good[-1]) == info["last_good_step"] == rec.of(TrainMetric)[-1].step


@pytest.mark.parametrize("key, value, words", [
    ("training.lr", 5.0, "training.lr"),
    ("method.name", "magic", "method.name"),
    ("data.path", "", "No training data"),
])
def test_invalid_configs_fail_in_plain_words(tiny_model_dir, tmp_path, key, value, words):
    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(8))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2)
    section, name = key.split(".")
    setattr(getattr(config, section), name, value)
    result = run_training(config, Recorder())
    assert isinstance(result, Failed) and words in result.reason
    assert "Traceback" not in result.reason


def test_unreadable_data_fails_with_the_data_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n")
    result = run_training(make_config(tiny_model_dir, bad, tmp_path / "run", max_steps=2), None)
    assert isinstance(result, Failed) and "bad.jsonl" in result.reason


def test_default_run_folder_is_dated_and_named_after_the_data(tunesmith_home):
    from datetime import datetime

    from engine.train.rundir import default_run_dir

    config = cfg.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.data.path = "/somewhere/my_recipes.jsonl"
    first = default_run_dir(config, datetime(2026, 3, 4, 5, 6))
    assert first == tunesmith_home / "runs" / "2026-03-04_0506_my_recipes"
    first.mkdir()
    assert default_run_dir(config, datetime(2026, 3, 4, 5, 6)).name == "2026-03-04_0506_my_recipes-2"
