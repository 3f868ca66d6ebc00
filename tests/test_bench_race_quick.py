"""The race end to end on the tiny model: both sides train in their own processes and the table is built.

Only the harness is checked (results present, same token total, a parity score); no timing is
asserted, the tiny model's numbers mean nothing.
"""
from __future__ import annotations

import json

import pytest

from bench import race


@pytest.mark.slow
def test_quick_race_on_the_tiny_model(tiny_model_dir, shared_data, tmp_path, capsys):
    code = race.main(["--quick", "--model", str(tiny_model_dir), "--data", str(shared_data / "alpaca_en_demo.json"),
                      "--only", "train", "--workdir", str(tmp_path), "--timeout", "120"])
    assert code == 0
    report = json.loads((tmp_path / "race.json").read_text())
    ours, base = report["runs"]["ours-lora-1"][0], report["runs"]["baseline-lora-1"][0]
    assert "error" not in ours, ours.get("error")
    assert "error" not in base, base.get("error")
    assert ours["tokens"] == base["tokens"]  # the same rows, rendered the same way
    assert ours["steps_done"] == base["steps_done"] == report["meta"]["workload"]["examples"] // 8
    for side in (ours, base):
        assert side["throughput"]["tokens_per_s"] > 0
        assert side["score"]["heldout_loss"] > 0
        assert side["peak_rss_mb"] > 0
    printed = capsys.readouterr().out
    assert "trained tokens/s vs baseline" in printed and "held-out loss" in printed
