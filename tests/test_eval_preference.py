"""Preference before/after: accuracy, margins, implicit rewards, the length guard, JSON and report."""
from __future__ import annotations

import json

import pytest

from engine.evaluate.preference import implicit_rewards, side_summary, sign_test, verdict
from tests.preference_data import dpo_run


def result_with(base_accuracy, tuned_accuracy, base_length, tuned_length, pairs=40) -> dict:
    side = lambda accuracy, length: {"accuracy": accuracy, "mean_length": length}  # noqa: E731
    return {"pairs": pairs, "base": side(base_accuracy, base_length), "tuned": side(tuned_accuracy, tuned_length),
            "changed": {"to_right": 3, "to_wrong": 2}}


def test_measures_from_log_probabilities():
    scores = [(-10.0, -12.0), (-20.0, -15.0), (-5.0, -9.0)]
    lengths = [(10, 4), (20, 30), (5, 3)]
    summary = side_summary(scores, lengths, [30, 50])
    assert summary["accuracy"] == pytest.approx(2 / 3, abs=1e-3) and summary["margin"] == pytest.approx(1 / 3, abs=1e-3)
    # Per token: -1.0 vs -3.0 right; -1.0 vs -0.5 wrong; -1.0 vs -3.0 right.
    assert summary["accuracy_per_token"] == pytest.approx(2 / 3, abs=1e-3) and summary["mean_length"] == 40
    rewards = implicit_rewards(scores, [(-9.0, -13.0), (-21.0, -14.0), (-5.0, -9.0)], beta=0.5)
    assert rewards["reward_accuracy"] == pytest.approx(1 / 3, abs=1e-3)
    assert rewards["reward_margin"] == pytest.approx(0.0, abs=1e-3)
    assert sign_test(0, 0) is None and sign_test(10, 0) == pytest.approx(2 / 1024, abs=1e-4) and sign_test(3, 3) == 1.0


@pytest.mark.parametrize("numbers,verbose,words", [
    ((0.50, 0.52, 60, 150), True, "verbose without substance"),  # much longer, no real gain: the guard
    ((0.50, 0.70, 60, 150), False, "read a few to check"),  # longer but it did learn: a softer note
    ((0.50, 0.70, 60, 65), False, "learned to prefer the chosen answers"),
    ((0.60, 0.40, 60, 60), False, "less often than before"),
    ((0.50, 0.52, 60, 62), False, "no clear change"),
])
def test_verdict_and_the_reward_hacking_guard(numbers, verbose, words):
    text, flagged = verdict(result_with(*numbers))
    assert flagged is verbose and words in text
    assert "On 40 held-out pairs" in text and "(3 pairs turned right, 2 turned wrong)" in text


def test_verdict_counts_one_pair_as_one_pair():
    result = result_with(0.50, 0.525, 60, 60)
    result["changed"] = {"to_right": 1, "to_wrong": 0}
    assert "(1 pair turned right, 0 turned wrong)" in verdict(result)[0]
    result["pairs"] = 79  # one pair of 79 moves the share by about 1.3 points
    assert "by 1.3 points)" in verdict(result)[0]
    result["pairs"] = 229
    assert "by 0.4 points)" in verdict(result)[0]
    result["pairs"] = 100
    assert "by 1 point)" in verdict(result)[0]


def test_verdict_says_when_the_model_moved_towards_the_chosen_answers_without_turning_pairs():
    result = result_with(0.559, 0.581, 107, 113, pairs=229)
    result["tuned"]["reward_accuracy"] = 0.68
    text = verdict(result)[0]
    assert "no clear change" in text and "moved towards the chosen answer in 68% of the pairs" in text
    result["tuned"]["reward_accuracy"] = 0.52
    assert "moved towards" not in verdict(result)[0]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir):
    from engine.evaluate import evaluate_run

    run = dpo_run(tmp_path_factory, tiny_model_dir)
    return run, evaluate_run(run, examples=4, max_new_tokens=8, probe=False)


def test_dpo_run_evaluation_has_the_preference_section(evaluated):
    run, results = evaluated
    preference = results["preference"]
    assert preference["pairs"] == 5 and preference["objective"] == "dpo" and preference["length_normalised"] is False
    base, tuned = preference["base"], preference["tuned"]
    assert tuned["accuracy"] >= base["accuracy"] and tuned["margin"] > base["margin"]
    assert tuned["reward_accuracy"] == 1.0 and tuned["reward_margin"] > 0 and "reward_accuracy" not in base
    assert base["mean_length"] is not None and tuned["mean_length"] is not None
    assert preference["verdict"].startswith("On 5 held-out pairs") and preference["verdict"] in results["summary"]
    assert len(preference["examples"]) == 3 and {"base", "tuned", "base_tokens"} <= set(preference["examples"][0])
    saved = json.loads((run / "eval" / "results.json").read_text())
    assert saved["preference"]["tuned"]["accuracy"] == tuned["accuracy"]
    assert "Preference pairs" in (run / "eval" / "report.html").read_text()


def test_cli_eval_json_carries_the_preference_section(evaluated, capsys):
    from engine.cli import main

    run, _ = evaluated
    assert main(["eval", str(run), "--json", "--examples", "2", "--max-new-tokens", "4", "--no-probe"]) == 0
    preference = json.loads(capsys.readouterr().out)["preference"]
    assert set(preference) >= {"pairs", "base", "tuned", "verdict"}
    assert set(preference["base"]) >= {"accuracy", "margin", "mean_length"}
    assert set(preference["tuned"]) >= {"accuracy", "margin", "mean_length", "reward_accuracy", "reward_margin"}


def test_only_pairs_count_as_preference_pairs():
    from engine.evaluate.preference import preference_pairs

    rows = [{"row": 1, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
            {"row": 2, "text": "plain"},
            {"row": 3, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
             "rejected": "Go away."}]
    assert [(p.row, p.rejected) for p in preference_pairs(rows)] == [(3, "Go away.")]
