"""With nothing but the defaults (training.plan: auto, keep general ability: auto), a run learns."""
from __future__ import annotations

import json

import pytest

from engine import config as cfg
from engine.events import Planned, Progress, Started
from engine.train import run_training
from engine.train.plan import STEP_FLOOR


@pytest.mark.slow
def test_defaults_teach_a_tiny_model_a_constant_answer_and_record_the_plan(tmp_path):
    from engine.evaluate.loading import load_run
    from engine.evaluate.runfolder import open_run
    from tests.test_train_run import Recorder
    from tests.tiny_model import build_tiny_model

    # Width 256: narrower random models cannot single out a token through their frozen output layer.
    model_dir = build_tiny_model(tmp_path / "model", hidden=256)
    data = tmp_path / "secret.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}: what is the secret word?",
                                        "completion": "pineapple"}) + "\n" for i in range(16)))
    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(model_dir), str(data), str(tmp_path / "run")
    rec = Recorder()
    result = run_training(config, rec)
    assert result.reason == "completed", result

    planned = rec.of(Planned)[0]
    started = rec.of(Started)[0]
    assert planned.plan == "auto" and planned.settings["steps"] == STEP_FLOOR == started.total_steps
    assert planned.settings["keep_general"] and planned.estimate_s > 0
    assert all(p.eta_s is not None for p in rec.of(Progress))
    saved = cfg.load(tmp_path / "run" / "run.yaml")
    assert saved.training.plan == "auto" and saved.training.max_steps == STEP_FLOOR
    assert saved.training.batch_size == planned.settings["batch_size"]
    assert json.loads((tmp_path / "run" / "plan.json").read_text())["explanation"] == planned.explanation

    from engine.evaluate.generate import generate_batch
    from engine.evaluate.settings import GenerationSettings
    from engine.templates import prompt_ids

    loaded = load_run(open_run(tmp_path / "run"))
    prompt = prompt_ids([{"role": "user", "content": "Question 99: what is the secret word?"}], loaded.tokenizer)
    settings = GenerationSettings(max_new_tokens=4, temperature=0.0, repetition_penalty=1.0)
    with loaded.side("tuned") as model:
        tuned = generate_batch(model, loaded.tokenizer, [prompt], settings)[0]
    with loaded.side("base") as model:
        base = generate_batch(model, loaded.tokenizer, [prompt], settings)[0]
    assert tuned.startswith("pineapple") and not base.startswith("pineapple")
