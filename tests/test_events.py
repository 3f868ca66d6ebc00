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


def test_an_unreadable_line_inside_the_file_is_skipped_and_said(tmp_path, caplog):
    good = [events.TrainMetric(step=s, loss=2.0, lr=1e-4, grad_norm=0.3, tokens_per_s=1.0) for s in (1, 2)]
    path = tmp_path / "metrics.jsonl"
    path.write_text(good[0].to_json() + "\n" + "{not json\n" + '{"type": "Unknown"}\n' + good[1].to_json() + "\n",
                    encoding="utf-8")
    skipped = []
    assert events.read_events(path, skipped) == good
    assert [line.split(":")[0] for line in skipped] == ["line 2", "line 3"]
    assert "2 unreadable line(s) skipped" in caplog.text and "metrics.jsonl" in caplog.text


def test_a_torn_last_line_is_skipped_quietly(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    event = events.Notice(message="hello")
    path.write_text(event.to_json() + "\n" + '{"type": "Noti', encoding="utf-8")
    skipped = []
    assert events.read_events(path, skipped) == [event]
    assert skipped == [] and "unreadable" not in caplog.text
