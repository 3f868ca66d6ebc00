"""Completion-style data end to end on the tiny model: trained with a separator, evaluated on the answers."""
from __future__ import annotations

import html
import json

import pytest

from engine import config as cfg


@pytest.fixture(scope="module")
def completion_run(tmp_path_factory, tiny_model_dir):
    """A run on plain text "table/Q/A" rows whose answer is always the same word, separator "A:" (full
    fine-tuning: on the tiny model it learns the answer and where to stop in a few steps)."""
    from engine.events import Finished
    from engine.train import run_training

    folder = tmp_path_factory.mktemp("completion")
    data = folder / "sql.jsonl"
    data.write_text("".join(json.dumps({"text": f"table: t{i} (name)\nQ: What is the secret word {i}?\nA: pineapple"})
                            + "\n" for i in range(30)), encoding="utf-8")
    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(tiny_model_dir), str(data), str(folder / "run")
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.data.completion_separator, config.data.max_length = "A:", 64
    config.method.name = "full"
    config.training.max_steps, config.training.eval_every, config.training.batch_size = 16, 16, 8
    config.training.lr, config.training.warmup_ratio, config.training.precision = 1e-2, 0.0, "fp32"
    config.evaluation.max_new_tokens = 8
    result = run_training(config)
    assert isinstance(result, Finished), result
    return folder / "run"


def test_completion_answers_are_scored_after_the_separator(completion_run):
    from engine.evaluate import evaluate_run
    from engine.evaluate.heldout import ONE_LINE_NOTE

    test_rows = (completion_run / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(test_rows) == 5  # 30 rows: 5 for validation, 5 for test
    results = evaluate_run(completion_run, examples=5, probe=False)
    assert results["answers"] == {"style": "completion", "separator": "A:", "first_line_only": True,
                                  "note": ONE_LINE_NOTE}
    first = results["examples"][0]
    assert first["prompt"].endswith("?\nA:") and first["reference"] == "pineapple" and first["messages"] == []
    assert results["tuned"]["exact_match"] == 1.0 and results["base"]["exact_match"] == 0.0
    assert results["tuned"]["val_loss"] < results["base"]["val_loss"]
    assert ONE_LINE_NOTE in results["summary"]


def test_without_a_separator_only_loss_is_measured_and_the_report_says_why(completion_run, tmp_path):
    import shutil

    from engine.evaluate import evaluate_run

    run = shutil.copytree(completion_run, tmp_path / "run")
    config = cfg.load(run / "run.yaml")
    config.data.completion_separator = ""
    cfg.save(config, run / "run.yaml")
    results = evaluate_run(run, examples=5, probe=False)
    assert results["examples"] == [] and results["tuned"]["exact_match"] is None
    assert results["tuned"]["val_loss"] is not None
    note = results["answers"]["note"]
    assert note.startswith("Only loss and perplexity are measured") and "'A:' starts the last labelled line" in note
    assert html.escape(note) in (run / "eval" / "report.html").read_text(encoding="utf-8")
