"""Events survive JSON and pickling, and a torn metrics file is still readable."""
from __future__ import annotations

import pickle

from engine import events


def test_round_trip_through_json_and_pickle(tmp_path):
    sample = [
        events.Started(run_dir="r", method="lora", device="cpu", trainable_params=10, total_params=1000,
                       train_examples=9, val_examples=1, total_steps=5),
        events.TrainMetric(step=1, loss=2.5, lr=1e-4, grad_norm=0.3, tokens_per_s=200.0),
        events.EvalMetric(step=1, val_loss=2.4, best_step=1, best_val_loss=2.4),
        events.Finished(run_dir="r", output_path="r/adapter", reason="completed", step=5),
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(e.to_json() + "\n" for e in sample) + '{"type": "TrainMet', encoding="utf-8")
    assert events.read_events(path) == sample
    assert [pickle.loads(pickle.dumps(e)) for e in sample] == sample
    assert sample[0].trainable_percent == 1.0
