"""Correctness of the race's helpers: data subsets, step clocks, throughput, rows and verdicts.

No timing is asserted here: the numbers come from `make bench` (see BENCHMARKS.md).
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bench.child import StepClock, throughput
from bench.rendering import IGNORE, count_tokens, render_file
from bench.report import build_rows, estimate_bytes, format_table, group, med, training_rows
from bench.workload import Workload, write_subsets, write_synthetic_alpaca


def _alpaca(path, n):
    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer number {i}."} for i in range(n)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_subsets_repeat_rows_and_keep_heldout_apart(tmp_path):
    source = _alpaca(tmp_path / "src.json", 100)
    train, heldout = write_subsets(source, 150, tmp_path / "out", heldout_rows=10)
    train_rows = json.loads(train.read_text())
    heldout_rows = json.loads(heldout.read_text())
    assert len(train_rows) == 150 and len(heldout_rows) == 10
    assert not {r["instruction"] for r in heldout_rows} & {r["instruction"] for r in train_rows}
    assert train_rows[90] == train_rows[0]  # 90 usable rows, then it wraps around


def test_missing_data_file_is_a_plain_message(tmp_path):
    with pytest.raises(SystemExit, match="data file not found"):
        write_subsets(tmp_path / "nope.json", 10, tmp_path / "out")


def test_synthetic_file_is_deterministic(tmp_path):
    a = write_synthetic_alpaca(tmp_path / "a.json", 500, seed=3)
    b = write_synthetic_alpaca(tmp_path / "b.json", 500, seed=3)
    rows = json.loads(a.read_text())
    assert len(rows) == 500 and a.read_text() == b.read_text()
    assert all(r["instruction"] and r["output"] for r in rows)


def test_throughput_leaves_out_warmup_steps():
    # 4 steps of 1000 tokens each; step 1 is slow (warm-up), steps 2..4 take 2 s each.
    times = {1: 100.0, 2: 102.0, 3: 104.0, 4: 106.0}
    result = throughput(times, total_steps=4, tokens_total=4000, warmup_steps=1)
    assert result["tokens_per_s"] == pytest.approx(3 * 1000 / 6.0)
    assert result["window_steps"] == 3


def test_throughput_needs_two_steps_after_warmup():
    result = throughput({1: 1.0}, total_steps=1, tokens_total=10, warmup_steps=1)
    assert result["tokens_per_s"] is None and "need at least 2" in result["note"]


def test_step_clock_median_and_tail_loss():
    clock = StepClock()
    clock.begin(0.0)
    for step, (t, loss) in enumerate([(10.0, 4.0), (11.0, 3.0), (12.0, 2.0), (13.0, 1.0)], start=1):
        clock.loss(step, loss, t)
    assert clock.median_step_s() == pytest.approx(1.0)  # the 10 s warm-up step does not dominate
    assert clock.tail_loss(0.5) == pytest.approx(1.5)
    assert clock.first_loss_time() == 10.0


def test_rendering_masks_the_prompt_and_counts_tokens(tiny_model_dir, tmp_path):
    from bench.rendering import load_tokenizer

    path = _alpaca(tmp_path / "d.json", 3)
    rendered, renderer = render_file(path, load_tokenizer(str(tiny_model_dir)), max_length=64)
    assert len(rendered) == 3 and renderer
    first = rendered[0]
    assert first["labels"][0] == IGNORE and any(x != IGNORE for x in first["labels"])
    counts = count_tokens(rendered)
    assert counts["tokens"] == sum(len(r["input_ids"]) for r in rendered)
    assert 0 < counts["label_tokens"] < counts["tokens"]


def _run(tokens_per_s, rss, heldout, first_after_load=1.0):
    return {"throughput": {"tokens_per_s": tokens_per_s}, "peak_rss_mb": rss, "first_loss_after_load_s": first_after_load,
            "first_loss_s": first_after_load + 5, "score": {"heldout_loss": heldout, "base_heldout_loss": 3.0},
            "tail_train_loss": heldout, "memory_estimate": {"bytes": rss * 2**20}}


def test_training_rows_compute_ratios_and_verdicts():
    g = {"ours-lora": [_run(300, 400, 2.00), _run(330, 420, 2.00)],
         "baseline-lora": [_run(100, 1000, 2.01), {"error": "boom"}],
         "baseline-lora-bf16": [_run(250, 900, 2.01)]}
    rows = {r["metric"]: r for r in training_rows("train", g, "ours-lora", "baseline-lora", "baseline-lora-bf16", True)}
    speed = rows["trained tokens/s vs baseline (default precision)"]
    assert speed["ours"] == 315 and speed["baseline"] == 100  # median of the two; the failed run is skipped
    assert speed["ratio"] == pytest.approx(3.15) and speed["verdict"] == "met"
    assert rows["trained tokens/s vs baseline in the same precision as ours"]["verdict"] == "MISSED"
    assert rows["peak memory (RSS)"]["verdict"] == "met"
    assert rows["held-out loss after equal tokens (one epoch, same rows)"]["verdict"] == "met"


def test_same_precision_row_uses_the_default_baseline_when_ours_is_fp32():
    g = {"ours-lora": [_run(300, 400, 2.0)], "baseline-lora": [_run(100, 1000, 2.0)]}
    rows = training_rows("train", g, "ours-lora", "baseline-lora", "baseline-lora-bf16", True, "fp32")
    same = rows[1]
    assert same["baseline"] == 100 and same["verdict"] == "met" and "fp32" in same["note"]


def test_missing_pieces_print_not_available():
    plan = SimpleNamespace(workload=Workload(model_dir="m", train_path="t", heldout_path="h", examples=8),
                           sections=("train", "chat", "lag"), settings={}, levers_unavailable={})
    results = {"ours-lora-1": [{"unavailable": "engine.train.run_training is not available yet"}],
               "baseline-lora-1": [_run(100, 1000, 2.0)],
               "chat-ours": [{"unavailable": "engine.evaluate.chat is not available"}]}
    rows = build_rows(results, plan)
    speed = rows[0]
    assert speed["ours"] is None and speed["ratio"] is None and "not available" in speed["note"]
    table = format_table(rows)
    assert "engine.evaluate.chat is not available" in table
    assert "not run" in table  # the lag probe never ran


def test_group_merges_repeats_and_med_skips_failures():
    merged = group({"ours-lora-1": [{"x": 1}], "ours-lora-2": [{"x": 3}], "stop-ours": [{"x": 9}]})
    assert sorted(merged) == ["ours-lora", "stop-ours"]
    assert med(merged["ours-lora"], lambda r: r["x"]) == 2
    assert med([{"error": "e", "x": 5}], lambda r: r["x"]) is None


def test_estimate_bytes_reads_the_known_shapes():
    assert estimate_bytes({"bytes": 2048}) == 2048
    assert estimate_bytes({"raw": {"total_bytes": 10}}) == 10
    assert estimate_bytes({"error": "no"}) is None


def test_each_pass_lever_switch_changes_the_step_and_puts_everything_back(tiny_model_dir, tmp_path):
    """bench.pass_levers: every variant runs a real step on the tiny model and leaves the model as it found it."""
    import torch

    from bench import pass_levers
    from engine.config import RunConfig
    from engine.train import loss as loss_module
    from engine.train.dropout import WordDropout
    from engine.train.loss import TokenLoss
    from engine.train.methods import load_model

    config = RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.data.max_length = 64
    data = _alpaca(tmp_path / "rows.json", 8)
    batches = pass_levers.step_batches(config, str(tiny_model_dir), data, 8)
    padded = pass_levers.step_batches(config, str(tiny_model_dir), data, 8, packing=False)
    assert all(b.segments for b in batches) and all(b.attention_mask is not None for b in padded)
    model = load_model(config, tiny_model_dir, torch.device("cpu"), torch.float32).model.train()
    setup = pass_levers.Setup(TokenLoss(model), batches, padded)

    def state():
        dropouts = sorted(type(d).__name__ for m in model.modules()
                          if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
                          for d in m.lora_dropout.values())
        return (setup.config._attn_implementation, tuple(dropouts), loss_module.KEEP_LOGITS_BYTES,
                torch.get_num_threads())

    before = state()
    assert before[1][0] == WordDropout.__name__
    for name, switch in pass_levers.VARIANTS.items():
        with switch(setup) as variant:
            assert pass_levers.time_step(variant) > 0, name
            if name != "all levers on":
                assert state() != before or variant is not setup, f"{name} switched nothing off"
        assert state() == before, f"{name} did not put the model back"
        assert all(p.grad is None for p in model.parameters()), name
