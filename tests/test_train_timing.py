"""The time model: work from token lengths, priced with measured rates; the run's clock; the rate cache."""
from __future__ import annotations

import json

import pytest

from engine.train import timing

SHAPE = timing.ModelShape(params=134_515_008, hidden=576, layers=30, vocab=49152)
RATE = timing.Throughput(train_s_per_flop=2e-11, eval_s_per_flop=7e-12, pass_s=0.05, step_s=0.02, startup_s=9.0,
                         decode_step_s=0.05)


def work(**kw) -> timing.RunWork:
    base = dict(steps=60, batch=8, mean_length=80, mean_learned=30, max_length=512, validations=6,
                val_lengths=[80] * 60, val_learned=[30] * 60, saves=6)
    base.update(kw)
    return timing.RunWork(**base)


def test_parameters_from_a_config_match_the_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    config = json.loads((tiny_model_dir / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    assert timing.estimate_params(config) == sum(p.numel() for p in model.parameters())


def test_the_estimate_adds_up_and_grows_with_the_work():
    e = timing.estimate(work(), SHAPE, RATE)
    assert e.total_s == pytest.approx(e.startup_s + e.steps_s + e.validation_s + e.answers_s + e.saves_s)
    assert e.first_step_s == pytest.approx(e.step_s + RATE.pass_s)  # 8 x 80 tokens: 2 rows, in 1 pass or 2
    long_rows = timing.estimate(work(mean_length=300), SHAPE, RATE)
    assert long_rows.first_step_s == pytest.approx(long_rows.step_s + 2 * RATE.pass_s)  # 5 rows: 5 passes, not 3
    assert timing.estimate(work(steps=120), SHAPE, RATE).steps_s == pytest.approx(e.steps_s + 60 * e.step_s)
    longer = timing.estimate(work(mean_length=400, mean_learned=150), SHAPE, RATE)
    assert longer.steps_s > 5 * e.steps_s  # attention grows faster than the length


def test_keeping_general_ability_costs_time_and_kl_costs_a_forward_pass_more():
    plain = timing.estimate(work(), SHAPE, RATE)
    kl = timing.estimate(work(general_per_step=2, general_length=90, general_learned=48), SHAPE, RATE)
    replay = timing.estimate(work(general_per_step=2, general_length=90, general_learned=48, general_kl=False),
                             SHAPE, RATE)
    assert plain.general_s == 0 < replay.general_s < kl.general_s
    assert kl.total_s == pytest.approx(plain.total_s + kl.general_s)
    first = timing.estimate(work(general_per_step=2, general_length=90, general_learned=48,
                                 general_answers_to_write=82), SHAPE, RATE)
    assert first.answers_s == pytest.approx(3 * 48 * RATE.decode_step_s)  # 82 prompts in batches of 32


def test_dpo_pays_a_reference_forward_pass_in_every_step_and_validation():
    orpo = timing.estimate(work(), SHAPE, RATE)
    dpo = timing.estimate(work(reference_forward=True), SHAPE, RATE)
    flops = timing.forward_flops(SHAPE, [80] * 8, [30] * 8)
    passes = timing.passes_for([80] * 8, 512, "cpu")
    assert dpo.step_s == pytest.approx(orpo.step_s + flops * RATE.eval_s_per_flop + passes * RATE.pass_s)
    assert dpo.validation_s == pytest.approx(2 * orpo.validation_s)


def test_the_clock_starts_from_the_estimate_and_follows_the_measured_steps():
    e = timing.estimate(work(), SHAPE, RATE)
    clock = timing.RunClock(e, 60, validations_left=6)
    on_time = clock.eta(1, e.first_step_s, 1, 6)
    assert on_time == pytest.approx(59 * e.step_s + e.validation_s)
    slow = clock.eta(30, 2 * (e.first_step_s + 29 * e.step_s), 30, 3)
    assert slow == pytest.approx(2 * (30 * e.step_s + 3 * clock.per_validation), rel=0.1)
    assert clock.eta(60, 10.0, 60, 0) == 0.0


def test_durations_read_like_speech():
    assert timing.format_duration(42) == "about 40 seconds"
    assert timing.format_duration(250) == "about 4 minutes"
    assert timing.format_duration(3 * 3600) == "about 3.0 hours"


def test_rates_are_cached_per_key_and_a_damaged_cache_reads_as_none(tmp_path):
    assert timing.load_throughput(tmp_path, "k") is None
    timing.save_throughput(tmp_path, "k", RATE)
    timing.save_throughput(tmp_path, "other", RATE)
    assert timing.load_throughput(tmp_path, "k") == RATE
    (tmp_path / timing.CACHE_FILE).write_text("{not json")
    assert timing.load_throughput(tmp_path, "k") is None
    timing.save_throughput(tmp_path, "k", RATE)  # a damaged file is replaced, not fatal
    assert timing.load_throughput(tmp_path, "k") == RATE


def test_a_finished_run_moves_the_stored_rates_half_way_by_its_typical_step_but_a_run_stopped_at_once_does_not():
    from engine import paths
    from engine.train import calibrate

    predicted = timing.estimate(work(), SHAPE, RATE)
    key = "test-key"
    short = calibrate.learn_from_run(key, predicted, RATE, step_times=[100 * predicted.step_s] * 3, startup_s=None)
    assert short == RATE and timing.load_throughput(paths.data_dir(), key) is None
    # every step took 4x the prediction, except a first one and a few stalled by something else
    steps = [9 * predicted.step_s] + [4 * predicted.step_s] * 55 + [60 * predicted.step_s] * 4
    learned = calibrate.learn_from_run(key, predicted, RATE, step_times=steps, startup_s=5.0)
    assert learned.train_s_per_flop == pytest.approx(2 * RATE.train_s_per_flop)  # half-way: sqrt(4)
    assert learned.pass_s == pytest.approx(2 * RATE.pass_s) and learned.startup_s == 5.0
    assert timing.load_throughput(paths.data_dir(), key) == learned
    # the same speed measured again (now 2x the new prediction): the rates move on towards it
    again = calibrate.learn_from_run(key, timing.estimate(work(), SHAPE, learned), learned,
                                     step_times=[4 * predicted.step_s] * 20, startup_s=5.0)
    assert again.train_s_per_flop == pytest.approx(2 * 2 ** 0.5 * RATE.train_s_per_flop)


def test_preference_runs_keep_their_own_rates_and_sft_keys_stay_as_they_were():
    from engine import config as cfg

    config = cfg.RunConfig()
    sft = timing.throughput_key(config, "/models/m", "cpu")
    config.training.objective = "dpo"
    dpo = timing.throughput_key(config, "/models/m", "cpu")
    assert dpo != sft and json.loads(dpo)[:5] == json.loads(sft) and json.loads(dpo)[-1] == "dpo"
