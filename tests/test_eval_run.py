"""Before/after evaluation of run folders: results, saved files, reports, forgetting, worker and CLI."""
from __future__ import annotations

import json
import queue
import shutil
import threading

import pytest

from engine.events import Failed, Finished, Notice, Progress
from tests.eval_runs import (CANARY_ANSWER, CANARY_QUESTION, canary_run, overtrained_run, small_probe,
                             synthetic_benchmark)


@pytest.fixture
def lora_run(tmp_path_factory, tiny_model_dir, tmp_path):
    """A private copy of the canary run, so this test's RUN/eval/ is its own."""
    return shutil.copytree(canary_run(tmp_path_factory, tiny_model_dir), tmp_path / "run")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir):
    """The canary run evaluated once through the window's worker entry point, with every event it sent."""
    from engine.evaluate.worker import eval_main

    run = shutil.copytree(canary_run(tmp_path_factory, tiny_model_dir), tmp_path_factory.mktemp("evaluated") / "run")
    events = queue.Queue()
    eval_main(str(run), events, threading.Event(), {"examples": 2, "probe_file": small_probe(run.parent),
                                                    "benchmark_file": synthetic_benchmark(run.parent)})
    received = []
    while not events.empty():
        received.append(events.get_nowait())
    return run, received


def test_worker_reports_progress_and_finishes(evaluated):
    run, received = evaluated
    assert not [e for e in received if isinstance(e, Failed)], received[-1]
    finished = received[-1]
    assert isinstance(finished, Finished) and finished.reason == "completed"
    assert finished.output_path == str(run / "eval" / "results.json")
    progress = [e for e in received if isinstance(e, Progress)]
    assert [p.step for p in progress] == list(range(1, progress[-1].total_steps + 1))
    assert any(isinstance(e, Notice) and "probe" in e.message for e in received)


def test_results_compare_base_and_tuned(evaluated):
    from engine.evaluate import load_results

    run, _ = evaluated
    results = load_results(run)
    for side in ("base", "tuned"):
        assert {"val_loss", "perplexity", "exact_match", "chrf", "rouge_l", "probe_accuracy"} <= set(results[side])
    assert results["tuned"]["val_loss"] < results["base"]["val_loss"]
    assert results["tuned"]["chrf"] > results["base"]["chrf"]
    assert results["val_examples"] == 3  # the plain-text row counts for the loss
    assert results["heldout"] == {"part": "test", "examples": 3, "file": "test.jsonl", "note": None}
    first = results["examples"][0]
    assert (first["prompt"], first["reference"]) == (CANARY_QUESTION, CANARY_ANSWER)
    assert "pineapple" in first["tuned"] and "pineapple" not in first["base"]
    assert len(results["examples"]) == 2
    general = results["general_ability"]
    assert general["items"] == 24 and {"base", "tuned", "difference", "per_task", "verdict"} <= set(general)
    assert results["general_ability_kept"] == general["kept"]
    assert results["probe"]["tuned"]["total"] == len(results["probe"]["tuned"]["answers"]) == 6
    assert results["summary"][0].startswith("Test loss: base")


def test_report_files_stand_alone(evaluated, tmp_path):
    from engine.evaluate import export_report

    run, _ = evaluated
    assert (run / "eval" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    page = (run / "eval" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and CANARY_QUESTION in page and "<h2>General ability</h2>" in page
    assert "class='bar tuned'" in page and "Probe questions (strict grading)" in page
    assert "src='http" not in page and "href=" not in page  # nothing fetched from elsewhere
    markdown = export_report(run, tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Evaluation of run")
    assert "| Test loss (lower is better) |" in markdown and "![Loss during training" in markdown
    assert "Measured on 3 test examples that training never saw" in markdown
    assert "| All tasks |" in markdown and "█" in markdown
    assert f"> {CANARY_ANSWER}" in markdown


def test_overtrained_model_reads_ordinary_text_worse(evaluated, tmp_path_factory, tiny_model_dir):
    from engine.evaluate import evaluate_run

    run = overtrained_run(tmp_path_factory, tiny_model_dir)
    heavy = evaluate_run(run, examples=0, benchmark="off", probe_file=small_probe(tmp_path_factory.mktemp("probe")))
    assert heavy["method"] == "full" and heavy["general_ability"] is None
    assert heavy["probe"]["tuned"]["text_perplexity"] > 2 * heavy["probe"]["base"]["text_perplexity"]


def test_stopping_returns_partial_results_and_saves_nothing(lora_run):
    from engine.evaluate import evaluate_run

    stop = threading.Event()
    seen = []

    def sink(event):
        seen.append(event)
        if isinstance(event, Progress) and event.step == 2:
            stop.set()

    results = evaluate_run(lora_run, sink=sink, stop=stop, examples=1, benchmark="off")
    assert results["stopped"] is True
    assert not (lora_run / "eval" / "results.json").exists()
    assert sum(isinstance(e, Progress) for e in seen) < 10


def test_cli_eval_json(lora_run, capsys):
    from engine.cli import main

    assert main(["eval", str(lora_run), "--json", "--examples", "1", "--no-probe", "--max-new-tokens", "8",
                 "--benchmark", "quick"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["base"]) >= {"val_loss", "perplexity"} and set(data["tuned"]) >= {"val_loss", "perplexity"}
    general = data["general_ability"]
    assert general["size"] == "quick" and general["items"] == sum(t["items"] for t in general["per_task"])
    for block in (general["base"], general["tuned"]):
        assert block["ci"][0] <= block["accuracy"] <= block["ci"][1]
    assert general["difference"]["ci"][0] <= general["difference"]["value"] <= general["difference"]["ci"][1]
    assert general["verdict"] in ("forgot", "no measurable change", "improved")
    assert data["general_ability_kept"] == general["kept"] <= 1.0 and data["probe"] is None  # --no-probe
    assert len(data["examples"]) == 1 and {"prompt", "reference", "base", "tuned"} <= set(data["examples"][0])
    assert (lora_run / "eval" / "results.json").is_file()


def test_cli_eval_table_and_report(lora_run, capsys, tmp_path, monkeypatch):
    from engine.cli import main
    from engine.evaluate import benchmark

    monkeypatch.setattr(benchmark, "builtin_benchmark_file", lambda: synthetic_benchmark(tmp_path))
    report = tmp_path / "out.html"
    assert main(["eval", str(lora_run), "--examples", "0", "--no-probe", "--benchmark", "full",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Test loss" in out and "Saved in" in out
    assert "General ability" in out and "All tasks" in out and "Colours" in out
    assert report.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_cli_eval_errors_are_plain(tmp_path, capsys, lora_run):
    from engine.cli import main

    assert main(["eval", str(tmp_path)]) == 2
    assert "not a Tunesmith run folder" in capsys.readouterr().err
    shutil.rmtree(lora_run / "adapter")
    assert main(["eval", str(lora_run)]) == 2
    assert "no trained result yet" in capsys.readouterr().err
    (lora_run / "adapter").mkdir()
    info = json.loads((lora_run / "run-info.json").read_text())
    info["base_model_path"] = str(tmp_path / "gone")
    (lora_run / "run-info.json").write_text(json.dumps(info))
    assert main(["eval", str(lora_run)]) == 2
    assert "base model this run was trained from is missing" in capsys.readouterr().err


def test_export_before_evaluation_says_what_to_do(lora_run, tmp_path):
    from engine.evaluate import EvaluationError, export_report

    with pytest.raises(EvaluationError, match="not been evaluated yet"):
        export_report(lora_run, tmp_path / "r.html")


def test_run_without_held_out_data_still_compares_the_probe(lora_run, tmp_path):
    from engine.evaluate import evaluate_run

    (lora_run / "val.jsonl").unlink()
    (lora_run / "test.jsonl").unlink()
    results = evaluate_run(lora_run, examples=3, probe_file=small_probe(tmp_path, items=2),
                           benchmark_file=synthetic_benchmark(tmp_path))
    assert results["base"]["val_loss"] is None and results["examples"] == []
    assert results["general_ability_kept"] is not None and results["probe"]["base"]["total"] == 2
    assert (lora_run / "eval" / "report.html").is_file()


def test_run_made_before_the_test_split_says_its_numbers_come_from_validation(lora_run, capsys):
    from engine.cli import main

    (lora_run / "test.jsonl").replace(lora_run / "val.jsonl")  # the layout of runs made before test.jsonl
    assert main(["eval", str(lora_run), "--json", "--examples", "1", "--no-probe", "--max-new-tokens", "4"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["heldout"]["part"] == "validation" and results["val_examples"] == 3
    assert "trained before Tunesmith kept a test split" in results["heldout"]["note"]
    assert results["summary"][0].startswith("Validation loss: base")
    page = (lora_run / "eval" / "report.html").read_text(encoding="utf-8")
    assert "Measured on 3 validation examples. This run was trained before" in page
    assert "<td>Validation loss (lower is better)</td>" in page and "Held-out validation examples" in page
