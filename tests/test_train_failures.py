"""Every way a run can fail ends in a final run folder and plain words: a setting that names no layer, an
unexpected error, memory (the GPU's or the computer's, with one retry in smaller passes), a full disk,
Ctrl-C; library warnings go to details.log instead of the user's log."""
from __future__ import annotations

import errno
import json
import logging
import warnings

import pytest
import torch

from engine.events import Failed, Finished, Notice, TrainMetric
from engine.train import checkpoint as ckpt
from engine.train import run_training
from engine.train.loss import TokenLoss
from tests.test_train_run import Recorder, make_config, toy_pairs, write_chat_jsonl

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data(tmp_path):
    return write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))


def _info(run) -> dict:
    return json.loads((run / "run-info.json").read_text())


def _cpu_out_of_memory() -> RuntimeError:
    """The very exception PyTorch raises when the computer's memory runs out."""
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    raise AssertionError("expected the allocation to fail")


def test_a_target_module_the_model_lacks_is_named_and_the_run_folder_says_failed(tiny_model_dir, data, tmp_path):
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2)
    config.method.target_modules = "q_proj,q_prj"
    result = run_training(config, Recorder())
    assert isinstance(result, Failed)
    assert "method.target_modules" in result.reason and "'q_prj'" in result.reason and "v_proj" in result.reason
    info = _info(tmp_path / "run")  # the folder existed before the model loaded, so it records the failure
    assert info["status"] == "failed" and info["reason"] == result.reason and info["finished"]


def test_an_unexpected_error_is_reported_with_the_log_and_the_kept_checkpoint(tiny_model_dir, data, tmp_path,
                                                                             monkeypatch):
    real_prune, calls = ckpt.prune, []

    def prune_then_break(*args, **kwargs):
        calls.append(1)
        real_prune(*args, **kwargs)
        if len(calls) == 2:
            raise ValueError("something no one foresaw")

    monkeypatch.setattr(ckpt, "prune", prune_then_break)
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=5, save_every=1, eval_every=100)
    result = run_training(config, Recorder())
    assert isinstance(result, Failed)
    assert result.reason == "Something unexpected went wrong while training: ValueError: something no one foresaw."
    assert "Traceback" in result.log_tail and "prune_then_break" in result.log_tail
    assert "checkpoint (step 2) is kept" in result.hint
    info = _info(tmp_path / "run")
    assert info["status"] == "failed" and info["reason"] == result.reason and "step 2" in info["hint"]


@pytest.mark.parametrize("make_error, words", [
    (_cpu_out_of_memory, "The computer ran out of memory (RAM) while training."),
    (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "The GPU ran out of memory while training."),
], ids=["cpu", "gpu"])
def test_running_out_of_memory_says_whose_memory(make_error, words, tiny_model_dir, data, tmp_path, monkeypatch):
    def forward(self, batch):
        raise make_error()

    monkeypatch.setattr(TokenLoss, "forward", forward)
    result = run_training(make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2), Recorder())
    assert isinstance(result, Failed) and result.reason == words
    assert "micro_batch_size" in result.hint
    assert _info(tmp_path / "run")["status"] == "failed"


def test_out_of_memory_is_retried_once_in_smaller_passes_with_the_same_result(tiny_model_dir, data, tmp_path,
                                                                             monkeypatch):
    def config_for(out):
        config = make_config(tiny_model_dir, data, tmp_path / out, max_steps=3, eval_every=100)
        config.training.micro_batch_size, config.training.packing = 4, False
        # fp32 and no dropout: then passes of 2 or 4 rows add up to the same step up to rounding
        config.training.precision, config.method.lora_dropout = "fp32", 0.0
        return config

    whole = Recorder()
    run_training(config_for("whole"), whole)
    real_forward, out_of_memory = TokenLoss.forward, _cpu_out_of_memory()

    def forward(self, batch):  # more than two examples in one training pass do not fit
        if batch.input_ids.shape[0] > 2 and torch.is_grad_enabled():
            raise out_of_memory
        return real_forward(self, batch)

    monkeypatch.setattr(TokenLoss, "forward", forward)
    retried = Recorder()
    result = run_training(config_for("retried"), retried)
    assert isinstance(result, Finished), result
    notices = [e.message for e in retried.of(Notice) if "ran out of" in e.message]
    assert notices == ["Step 2 ran out of the computer's memory with 4 rows per pass; trying again with 2: "
                       "the same steps in smaller parts, a little slower."]
    assert [e.loss for e in retried.of(TrainMetric)] == pytest.approx([e.loss for e in whole.of(TrainMetric)],
                                                                      rel=1e-5)


def test_a_full_disk_during_a_save_is_said_plainly_and_the_previous_checkpoint_stays(tiny_model_dir, data,
                                                                                    tmp_path, monkeypatch):
    real_save, saves = ckpt.save_file, []

    def save_file(tensors, filename, *args, **kwargs):
        saves.append(filename)
        if len(saves) == 2:  # the second checkpoint: the disk fills up half-way through its weights
            with open(filename, "wb") as fh:
                fh.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=6, save_every=2, eval_every=100)
    result = run_training(config, Recorder())
    assert isinstance(result, Failed)
    assert result.reason.startswith("The disk is full: a file could not be written while training")
    assert "Free some space" in result.hint and "checkpoint (step 2) is kept" in result.hint
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == [ckpt.checkpoint_name(2)]  # no half-written step 4 left
    ckpt.read_trainable(checkpoints / ckpt.checkpoint_name(2))  # intact
    assert _info(tmp_path / "run")["status"] == "failed"


def test_ctrl_c_twice_still_leaves_the_run_folder_final(tiny_model_dir, data, tmp_path, monkeypatch):
    def forward(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(TokenLoss, "forward", forward)
    with pytest.raises(KeyboardInterrupt):
        run_training(make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2), None)
    info = _info(tmp_path / "run")
    assert info["status"] == "failed" and info["reason"] == "Interrupted while training."


@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_library_warnings_go_to_details_log_and_the_log_gets_plain_words(tiny_model_dir, data, tmp_path,
                                                                        monkeypatch, capsys, method):
    from engine.train import run as run_module

    real_load = run_module.load_model

    def noisy_load(*args, **kwargs):
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(run_module, "load_model", noisy_load)
    rec = Recorder()
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2)
    config.method.name = method
    result = run_training(config, rec)
    assert isinstance(result, Finished)
    details = (tmp_path / "run" / "details.log").read_text()
    assert "FutureWarning" in details and "is_gradient_checkpointing" in details and "gemm_4bit_forward" in details
    said = [e.message for e in rec.of(Notice)]
    # The 4-bit kernel message concerns QLoRA alone; a LoRA run has no 4-bit layer to speak of.
    assert any("built-in CPU code path" in message for message in said) == (method == "qlora")
    assert any("details.log" in message and "nothing to do" in message for message in said)
    assert not any("FutureWarning" in message or "kernels-community" in message for message in said)
    err = capsys.readouterr().err
    assert "FutureWarning" not in err and "kernels-community" not in err
    # The libraries' own handlers are back once the run is over.
    assert not any(type(h).__module__ == "engine.train.details" for h in logging.getLogger("bitsandbytes").handlers)
