"""Fault injection on tiny models: what a kill, a crash, a moved folder or two writers at once leave behind.

Other faults live beside the code they test: a full disk during a save and running out of memory in
test_train_failures.py, a damaged checkpoint and one that asks to run code in test_run_safety.py.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import config as cfg
from engine.events import Finished, TrainMetric, read_events
from engine.train import checkpoint as ckpt
from engine.train import run_training
from tests.test_train_run import Recorder, make_config, toy_pairs, write_chat_jsonl

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)

# Trains as run.yaml says and SIGKILLs itself while writing the checkpoint of step KILL_AT, after its
# weights and optimizer state are on disk but before state.json: the worst moment for a kill.
KILLED_TRAINER = """
import os, signal, sys
from engine import config as cfg
from engine.train import checkpoint as ckpt, run_training

config, kill_at = cfg.load(sys.argv[1]), int(sys.argv[2])
real_save = ckpt.torch.save

def save_then_die(obj, file, *args, **kwargs):
    real_save(obj, file, *args, **kwargs)
    if ckpt.checkpoint_name(kill_at) in str(file):
        os.kill(os.getpid(), signal.SIGKILL)

ckpt.torch.save = save_then_die
run_training(config, None)
"""


def _kill_during_checkpoint(config: cfg.RunConfig, kill_at: int, tmp_path: Path) -> None:
    config_file = tmp_path / "killed.yaml"
    cfg.save(config, config_file)
    script = tmp_path / "killed_trainer.py"
    script.write_text(KILLED_TRAINER, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(script), str(config_file), str(kill_at)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def test_sigkill_during_a_checkpoint_write_leaves_a_usable_run_that_resumes_to_the_same_losses(
        tiny_model_dir, tmp_path):
    from engine.evaluate import ChatModel, evaluate_run
    from engine.evaluate.settings import GenerationSettings
    from engine.export import export_run

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(20) + toy_pairs(12, "Another answer entirely."))
    whole = Recorder()
    run_training(make_config(tiny_model_dir, data, tmp_path / "whole", max_steps=6, eval_every=2), whole)
    config = make_config(tiny_model_dir, data, tmp_path / "killed", max_steps=6, eval_every=2)
    _kill_during_checkpoint(config, 4, tmp_path)

    run = tmp_path / "killed"
    info = json.loads((run / "run-info.json").read_text())
    assert info["status"] == "running" and not (run / "adapter").exists()  # killed: nobody could say so
    assert (run / "checkpoints" / (ckpt.TEMP_PREFIX + ckpt.checkpoint_name(4))).is_dir()  # the torn write

    # Usable as it is: chat, evaluation and export work from the checkpoint at step 2.
    chat = ChatModel(run)
    assert chat.run.tuned_path == run / "checkpoints" / ckpt.checkpoint_name(2) / "adapter"
    answer = "".join(chat.stream([{"role": "user", "content": "Question 1: what is the secret word?"}], "tuned",
                                 GenerationSettings(max_new_tokens=4), None))
    assert isinstance(answer, str)
    results = evaluate_run(run, examples=1, max_new_tokens=4, probe=False)
    assert results["tuned"] and (run / "eval" / "results.json").is_file()
    notes = []
    exported = export_run(run, "adapter", tmp_path / "exported", progress=lambda m, f: notes.append(m))
    assert (exported / "adapter_model.safetensors").is_file()
    assert any("did not finish" in note and "step 2" in note for note in notes)

    # Resumed, it goes on from step 2 and draws the uninterrupted curve.
    killed_losses = {e.step: e.loss for e in read_events(run / "metrics.jsonl") if isinstance(e, TrainMetric)}
    assert sorted(killed_losses) == [1, 2, 3, 4]
    resumed = Recorder()
    result = run_training(config, resumed, resume_from=run)
    assert isinstance(result, Finished) and result.step == 6
    assert [e.step for e in resumed.of(TrainMetric)] == [3, 4, 5, 6]
    expected = {e.step: e.loss for e in whole.of(TrainMetric)}
    for step, loss in list(killed_losses.items()) + [(e.step, e.loss) for e in resumed.of(TrainMetric)]:
        assert loss == pytest.approx(expected[step], rel=1e-4), step
    assert not (run / "checkpoints" / (ckpt.TEMP_PREFIX + ckpt.checkpoint_name(4))).exists()


def test_sigterm_from_the_window_stops_the_run_cleanly_and_keeps_it_usable(qtbot, tiny_model_dir, tmp_path):
    from gui.process_host import ProcessHost
    from gui.runs import RunSummary, read_run_info

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=500, eval_every=100)
    host = ProcessHost("engine.worker:train_main", args=(cfg.to_dict(config),), name="train")
    steps = []

    def on_event(event):
        if isinstance(event, TrainMetric):
            steps.append(event.step)
            if len(steps) == 2:
                os.kill(host.pid, signal.SIGTERM)  # what the window's escalation sends after its grace period

    host.eventReceived.connect(on_event)
    with qtbot.waitSignal(host.ended, timeout=150000) as ended:
        host.start()
    outcome = ended.args[0]
    assert isinstance(outcome, Finished) and outcome.reason == "stopped", outcome
    assert outcome.step < 500 and outcome.step == steps[-1]
    run = tmp_path / "run"
    assert read_run_info(run)["status"] == "stopped"
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert RunSummary(run, read_run_info(run)).has_result


def test_a_worker_that_aborts_leaves_the_window_alive_with_the_log_tail(qtbot, qapp, tunesmith_home, tmp_path,
                                                                       monkeypatch):
    import pickle

    from gui.controller import Controller
    from gui.views.training_view import TrainingView
    from tests.fake_worker import SCRIPT_ENV

    script = [("print", "step 3 of 10: writing the checkpoint"), ("abort", None)]
    (tmp_path / "script.pickle").write_bytes(pickle.dumps(script))
    monkeypatch.setenv(SCRIPT_ENV, str(tmp_path / "script.pickle"))
    config = cfg.RunConfig()
    config.data.path = str(tmp_path / "data.jsonl")
    config.out = str(tunesmith_home / "runs" / "aborting")
    view = TrainingView(Controller(config), train_target="tests.fake_worker:fake_train_main")
    qtbot.addWidget(view)
    view.show()
    with qtbot.waitSignal(view.trainingEnded, timeout=60000) as ended:
        assert view.start_training()
    outcome = ended.args[0]
    assert "crashed (SIGABRT)" in outcome.reason
    assert view.error_card.isVisible() and view.error_log.isVisible()
    tail = view.error_log.toPlainText()
    assert "step 3 of 10: writing the checkpoint" in tail and "Fatal Python error: Aborted" in tail
    assert view.start_button.isEnabled() and not view.is_training  # the window lives on


def test_a_moved_run_folder_still_opens_lists_resumes_and_exports(tiny_model_dir, tmp_path):
    from engine.evaluate.runfolder import open_run
    from engine.export import export_run
    from gui import runs

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))
    stop = threading.Event()
    config = make_config(tiny_model_dir, data, tmp_path / "old" / "run", max_steps=8, save_every=2, eval_every=2)
    run_training(config, Recorder(stop_at_step=4, stop=stop), stop=stop)
    moved = tmp_path / "elsewhere" / "renamed-run"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "old" / "run"), moved)
    shutil.rmtree(tmp_path / "old")

    summary = runs.RunSummary(moved, runs.read_run_info(moved))
    assert summary.has_result and [p.name for p in summary.checkpoints()][-1] == ckpt.checkpoint_name(4)
    assert runs.load_curves(moved).train_steps  # the curves come from the folder's own metrics.jsonl
    assert open_run(moved).tuned_path == moved / "adapter"
    assert (export_run(moved, "adapter", tmp_path / "exported") / "adapter_config.json").is_file()

    resumed_config = cfg.load(moved / "run.yaml")  # what the window's Resume does
    result = run_training(resumed_config, Recorder(), resume_from=moved / "checkpoints" / ckpt.checkpoint_name(4))
    assert isinstance(result, Finished) and result.step == 8 and Path(result.run_dir) == moved
    assert cfg.load(moved / "run.yaml").out == str(moved) and not (tmp_path / "old").exists()


def test_two_evaluations_of_one_run_saving_at_once_leave_a_whole_results_file(tiny_model_dir, tmp_path,
                                                                                 monkeypatch):
    from engine.evaluate import before_after, report
    from engine.evaluate.runfolder import open_run
    from tests.eval_runs import make_run

    run = open_run(make_run(tmp_path / "run", tiny_model_dir, steps=2))
    real = before_after.evaluate_run(run.path, examples=1, max_new_tokens=2, probe=False)
    real_report, errors = report.write_report_files, []
    # Saving is the part two evaluations can do at the same moment; the report's chart, drawn in
    # between, only makes the overlap rarer, so most rounds leave it out.
    monkeypatch.setattr(report, "write_report_files", lambda run, results: None)

    def evaluation(name: str) -> None:  # each saves its own results, big enough that the writes overlap
        results = dict(real, who=name, rows=["x" * 200] * 2000)
        try:
            for _ in range(40):
                before_after.save_results(run, results)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=evaluation, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = before_after.load_results(run.path)
    assert saved is not None and saved["who"] in ("first", "second") and len(saved["rows"]) == 2000
    monkeypatch.setattr(report, "write_report_files", real_report)
    before_after.save_results(run, real)
    assert (run.eval_dir / "report.html").read_text().rstrip().endswith("</html>")
    assert sorted(p.name for p in run.eval_dir.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_a_checkpoint_result_built_by_two_readers_at_once_is_whole(tiny_model_dir, tmp_path):
    from engine.train.result import trained_result

    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_pairs(16))
    config = make_config(tiny_model_dir, data, tmp_path / "run", max_steps=2, save_every=2, eval_every=100)
    run_training(config, None)
    run = tmp_path / "run"
    shutil.rmtree(run / "adapter")  # as if killed before the end
    info = json.loads((run / "run-info.json").read_text())
    found, errors = [], []

    def reader():
        try:
            found.append(trained_result(run, info))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(found)) == 1
    built = found[0]
    assert built == run / "checkpoints" / ckpt.checkpoint_name(2) / "adapter"
    assert sorted(p.name for p in built.parent.iterdir() if p.name.startswith(".")) == []
    saved = ckpt.read_trainable(built.parent)
    from safetensors.torch import load_file

    adapter = load_file(str(built / "adapter_model.safetensors"))
    assert len(adapter) == len(saved)
