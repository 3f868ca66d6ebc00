"""Nothing the user made is lost and nothing in a run folder runs code: checkpoints saved again,
resumes that abandon later checkpoints, checkpoints that ask to run code, damaged checkpoints."""
from __future__ import annotations

import json
import os

import pytest

from engine.events import Failed, Finished, Notice, TrainMetric
from engine.train import checkpoint as ckpt
from engine.train import run_training
from tests.test_train_run import Recorder, make_config, toy_pairs, write_chat_jsonl

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data(tmp_path):
    return write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))


def test_a_kill_while_a_step_is_saved_again_keeps_one_complete_copy(tiny_model_dir, data, tmp_path, monkeypatch):
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2, save_every=2, eval_every=100)
    run_training(config, None)
    checkpoints = tmp_path / "run" / "checkpoints"
    saved = checkpoints / ckpt.checkpoint_name(2)
    before = ckpt.read_trainable(saved)

    # Save step 2 again and "die" between moving the old copy away and moving the new one in.
    import torch

    real_replace = os.replace
    calls = []

    def dying_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    monkeypatch.setattr(ckpt.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(checkpoints, 2, model, optimizer, scheduler, {})
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert not saved.exists()  # the moment of danger: only the copy set aside is whole

    ckpt.clean_incomplete(checkpoints)  # what every start and resume does first
    assert ckpt.is_complete(saved)
    after = ckpt.read_trainable(saved)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert sorted(p.name for p in checkpoints.iterdir()) == [ckpt.checkpoint_name(2)]


def test_resuming_from_an_older_checkpoint_moves_the_abandoned_later_ones_aside(tiny_model_dir, data, tmp_path):
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=10, save_every=2, eval_every=100,
                         keep_checkpoints=10)
    config.data.val_fraction = 0.0
    run_training(config, None)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [ckpt.step_of(p) for p in ckpt.list_checkpoints(checkpoints)] == [2, 4, 6, 8, 10]

    # Resume from step 4 with another rhythm: saves at 6 and 9, keeping only the newest.
    config.training.save_every, config.training.max_steps, config.training.keep_checkpoints = 3, 9, 1
    rec = Recorder()
    result = run_training(config, rec, resume_from=checkpoints / ckpt.checkpoint_name(4))
    assert isinstance(result, Finished) and result.step == 9
    assert [e.step for e in rec.of(TrainMetric)] == list(range(5, 10))
    # Left in place, the old step 10 ranks newest and pruning deletes the fresh step 9.
    assert [ckpt.step_of(p) for p in ckpt.list_checkpoints(checkpoints)] == [9]
    abandoned = tmp_path / "run" / ckpt.ABANDONED_FOLDER
    assert sorted(p.name for p in abandoned.iterdir()) == [ckpt.checkpoint_name(s) for s in (6, 8, 10)]
    assert ckpt.read_state(abandoned / ckpt.checkpoint_name(10))["step"] == 10  # kept whole, not deleted
    notice = next(e.message for e in rec.of(Notice) if "later checkpoints" in e.message)
    assert "step 6, 8, 10" in notice and ckpt.ABANDONED_FOLDER in notice


class _RunsCode:
    """Unpickling this object calls open(marker, "w"): what a tampered checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_holds_a_pickled_callable_is_refused_and_nothing_runs(tiny_model_dir, data, tmp_path):
    import torch

    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2, save_every=2, eval_every=100)
    run_training(config, None)
    checkpoint = tmp_path / "run" / "checkpoints" / ckpt.checkpoint_name(2)
    state_file = checkpoint / ckpt.TRAINING_STATE_FILE
    state = torch.load(state_file, weights_only=True)
    marker = tmp_path / "code-ran"
    state["scheduler"]["lr_lambdas"] = [_RunsCode(marker)]
    torch.save(state, state_file)

    config.training.max_steps = 4
    result = run_training(config, Recorder(), resume_from=tmp_path / "run")
    assert isinstance(result, Failed)
    assert "refuses to load it" in result.reason and str(state_file) in result.reason
    assert not marker.exists()
    info = json.loads((tmp_path / "run" / "run-info.json").read_text())
    assert info["status"] == "failed"


def test_a_damaged_checkpoint_is_skipped_with_a_message_and_the_previous_one_is_used(tiny_model_dir, data, tmp_path):
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=4, save_every=2, eval_every=100,
                         keep_checkpoints=3)
    run_training(config, None)
    checkpoints = tmp_path / "run" / "checkpoints"
    damaged = checkpoints / ckpt.checkpoint_name(4) / ckpt.WEIGHTS_FILE
    damaged.write_bytes(damaged.read_bytes()[:100])  # torn by a disk error

    config.training.max_steps = 6
    rec = Recorder()
    result = run_training(config, rec, resume_from=tmp_path / "run")
    assert isinstance(result, Finished) and result.step == 6
    assert [e.step for e in rec.of(TrainMetric)] == [3, 4, 5, 6]  # from step 2, the one before
    message = next(e.message for e in rec.of(Notice) if "cannot be used" in e.message)
    assert ckpt.checkpoint_name(4) in message and "damaged" in message and "the one before" in message
