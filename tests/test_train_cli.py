"""`tunesmith-cli train`, the worker entry point and the data-parallel launch path."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from engine import config as cfg
from engine.cli import main
from engine.events import EvalMetric, Failed, Finished, Started, TrainMetric, event_from_dict

REPO = Path(__file__).resolve().parent.parent


def _toy_file(path: Path, n: int = 16) -> Path:
    path.write_text("".join(json.dumps({"instruction": f"Question {i}: the secret word?", "output": "Pineapple."})
                            + "\n" for i in range(n)))
    return path


def test_flags_override_the_config_file_and_print_config(tmp_path, capsys):
    run_yaml = tmp_path / "run.yaml"
    base = cfg.RunConfig()
    base.training.epochs, base.data.path, base.method.lora_r = 5.0, "old.json", 4
    cfg.save(base, run_yaml)
    code = main(["train", "--config", str(run_yaml), "--data", "new.jsonl", "--epochs", "2", "--batch-size", "4",
                 "--max-length", "256", "--seed", "7", "--map", "question=prompt", "--map", "answer=completion",
                 "--set", "method.lora_alpha=8", "--print-config"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["path"] == "new.jsonl" and printed["training"]["epochs"] == 2.0
    assert printed["training"]["batch_size"] == 4 and printed["data"]["max_length"] == 256
    assert printed["training"]["seed"] == 7 and printed["method"]["lora_r"] == 4
    assert printed["method"]["lora_alpha"] == 8
    assert printed["data"]["mapping"] == {"question": "prompt", "answer": "completion"}


def test_test_data_flag_and_config_key_name_the_test_file(tmp_path, capsys):
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("data:\n  path: train.jsonl\n  test_path: from-config.jsonl\n  test_fraction: 0.2\n")
    assert main(["train", "--config", str(run_yaml), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["test_path"] == "from-config.jsonl" and printed["data"]["test_fraction"] == 0.2
    assert main(["train", "--config", str(run_yaml), "--test-data", "held-back.jsonl", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["test_path"] == "held-back.jsonl"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--test-data TEST_DATA" in capsys.readouterr().out


def test_method_flag_takes_the_methods_learning_rate_unless_lr_is_given(capsys):
    main(["train", "--method", "prompt", "--print-config"])
    assert yaml.safe_load(capsys.readouterr().out)["training"]["lr"] == cfg.METHOD_DEFAULTS["prompt"]["training.lr"]
    main(["train", "--method", "prompt", "--lr", "0.005", "--print-config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["lr"] == 0.005 and printed["method"]["name"] == "prompt"


@pytest.mark.parametrize("argv, words", [
    (["--set", "training.nope=1"], "has no setting 'nope'"),
    (["--set", "training.lr"], "KEY=VALUE"),
    (["--map", "question"], "COLUMN=ROLE"),
    (["--lr", "3", "--data", "x.json"], "training.lr"),
])
def test_bad_flags_are_one_plain_message(argv, words, capsys):
    assert main(["train"] + argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_events_jsonl_prints_one_event_per_line(tiny_model_dir, tmp_path, capsys):
    data = _toy_file(tmp_path / "toy.jsonl")
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--max-steps", "2", "--batch-size",
                 "4", "--max-length", "64", "--out", str(tmp_path / "run"), "--events", "jsonl"])
    assert code == 0
    events = [event_from_dict(json.loads(line)) for line in capsys.readouterr().out.splitlines()]
    assert isinstance(events[-1], Finished) and any(isinstance(e, Started) for e in events)
    assert [e.step for e in events if isinstance(e, TrainMetric)] == [1, 2]


def test_train_main_puts_events_on_the_queue(tiny_model_dir, tmp_path):
    from engine.worker import train_main

    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(tiny_model_dir), str(_toy_file(tmp_path / "t.jsonl")), \
        str(tmp_path / "run")
    config.training.max_steps, config.training.batch_size, config.data.max_length = 1, 4, 64
    events: queue.Queue = queue.Queue()
    train_main(cfg.to_dict(config), events, threading.Event())
    seen = []
    while not events.empty():
        seen.append(events.get())
    assert isinstance(seen[-1], Finished) and any(isinstance(e, Started) for e in seen)


def test_train_main_turns_a_crash_into_a_failed_event_with_the_log(monkeypatch):
    from engine import worker
    from engine.train import run as run_module

    def explode(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(run_module, "run_training", explode)
    events: queue.Queue = queue.Queue()
    worker.train_main({"data": {"path": "x.json"}}, events, threading.Event())
    failed = events.get_nowait()
    assert isinstance(failed, Failed) and "GPU ran out of memory" in failed.reason
    assert "smaller micro-batch" in failed.hint
    assert "RuntimeError" in failed.log_tail
    worker.train_main({"nonsense": {}}, events, threading.Event())
    assert "unknown section 'nonsense'" in events.get_nowait().reason


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_cpu_processes_train_data_parallel_like_one_even_when_a_rank_gets_no_example(tiny_model_dir, tmp_path):
    """`--gpus 2` relaunches through torch.distributed.run (gloo on CPU); the loss curve is the single-process one.

    7 training examples in steps of 6: every second step holds one example, so rank 1 has none (it
    used to wait forever in the gradient all-reduce); 3 validation examples give the ranks 2 and 1.
    """
    data = _toy_file(tmp_path / "toy.jsonl", 7)
    val = _toy_file(tmp_path / "val.jsonl", 3)
    common = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--max-steps", "4", "--batch-size", "6",
              "--max-length", "64", "--lr", "1e-3", "--set", "method.lora_dropout=0", "--set",
              f"data.val_path={val}", "--set", "training.eval_every=2", "--events", "jsonl"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    outputs = []
    for extra in ([], ["--gpus", "2"]):
        out = tmp_path / f"run{len(extra)}"
        proc = subprocess.Popen([sys.executable, "-m", "engine", *common, "--out", str(out), *extra], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            import psutil

            for child in psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]:
                child.kill()  # the launcher and both ranks (torch.distributed.run gives them sessions of their own)
            proc.communicate()
            pytest.fail(f"{extra or 'one process'}: no result within 100 s (a rank waiting for the other)")
        assert proc.returncode == 0, stderr[-3000:]
        outputs.append([event_from_dict(json.loads(line)) for line in stdout.splitlines() if line.startswith("{")])
    single, double = ([e.loss for e in events if isinstance(e, TrainMetric)] for events in outputs)
    assert len(single) == len(double) == 4  # rank 0 alone reports
    assert double == pytest.approx(single, rel=1e-4)
    single_val, double_val = ([e.val_loss for e in events if isinstance(e, EvalMetric)] for events in outputs)
    assert len(double_val) == 2 and double_val == pytest.approx(single_val, rel=1e-4)
    assert (tmp_path / "run2" / "adapter" / "adapter_model.safetensors").is_file()


def test_print_plan_shows_the_plan_and_its_time_measuring_the_speed_once(tiny_model_dir, tmp_path, capsys):
    from engine import paths

    data = _toy_file(tmp_path / "toy.jsonl")
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--max-length", "64", "--print-plan"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "Plan (auto)" in out and "steps of" in out and "Time on this computer: about" in out
    assert "Keep general ability: on" in out and "Measuring this computer's training speed" in err
    assert (paths.data_dir() / "throughput.json").is_file()
    assert main(args + ["--keep-general", "off", "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert "Plan (custom)" in out and "Your settings:" in out and "Keep general ability: off" in out
    assert "Measuring" not in err  # the measured speed is kept for the next estimate
    assert not (tmp_path / "run").exists()


def _noisy(result, where):
    """A stand-in for a library-heavy call that warns the way torch, transformers and bitsandbytes do."""
    def call(*args, **kwargs):
        import logging
        import warnings

        # Python shows a warning once per text and place: each caller gets its own text.
        warnings.warn(f"`is_gradient_checkpointing` is deprecated ({where}).", FutureWarning)
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.")
        return result
    return call


def test_plan_and_eval_keep_the_libraries_notes_off_the_terminal(tiny_model_dir, tmp_path, capsys, monkeypatch,
                                                                   recwarn, caplog):
    import engine.evaluate
    from engine.train import preview

    def shown() -> str:
        """What reached the terminal, or would have outside pytest (which catches warnings and log records)."""
        text = capsys.readouterr().err + caplog.text + "".join(str(w.message) for w in recwarn)
        caplog.clear()
        recwarn.clear()
        return text

    monkeypatch.setattr(preview, "preview_plan", _noisy("Plan (auto): 64 steps", "plan"))
    data = _toy_file(tmp_path / "toy.jsonl")
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--print-plan"]) == 0
    assert capsys.readouterr().out.strip() == "Plan (auto): 64 steps"
    assert "is_gradient_checkpointing" not in shown()
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(engine.evaluate, "evaluate_run", _noisy({"run": str(run)}, "eval"))
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run": str(run)}
    assert "kernels-community" not in shown()
    details = (run / "details.log").read_text()  # kept for a bug report, as a training run keeps them
    assert "deprecated (eval)" in details and "gemm_4bit_forward" in details
