"""General ability on the benchmark: the scorer, the intervals, the verdict, the cache and the shipped file."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine.evaluate.benchmark import Benchmark, BenchmarkItem, BenchmarkTask, load_benchmark
from engine.evaluate.general_ability import FORGOT, IMPROVED, UNCHANGED, Comparison
from engine.evaluate.intervals import paired_difference, wilson_interval
from tests.eval_runs import knowing_model, make_run, synthetic_benchmark


# --- the scorer ---------------------------------------------------------------------------------------
def _naive_scores(model, question) -> list[float]:
    """One plain model(...) call per choice: the definition the packed scorer must reproduce."""
    import torch

    scores = []
    for choice in question.choices:
        ids = torch.tensor([list(question.prompt) + list(choice)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -ids.shape[1]:]  # prompt tuning puts its tokens first
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        start = len(question.prompt)
        scores.append(sum(float(log_probs[start - 1 + t, token]) for t, token in enumerate(choice)))
    return scores


@pytest.mark.parametrize("adapter", ["none", "lora", "prompt"])
def test_packed_scores_equal_one_model_call_per_choice(tiny_model_dir, adapter):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.evaluate.general_ability import choice_questions
    from engine.evaluate.choice_scoring import score_questions
    from engine.templates import load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    if adapter == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    elif adapter == "prompt":
        from peft import PromptTuningConfig, get_peft_model

        model = get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5))
    model.eval()
    items = synthetic_benchmark_items()[:7] + [BenchmarkItem("t", "The quick brown fox", (" jumps.", "x", "a b c d"), 0)]
    questions = choice_questions(items, tokenizer)
    packed = score_questions(model, questions, pad_id=tokenizer.pad_token_id, batch_tokens=150)
    for question, scores in zip(questions, packed):
        assert scores == pytest.approx(_naive_scores(model, question), abs=2e-4)


def synthetic_benchmark_items() -> list[BenchmarkItem]:
    data = json.loads(synthetic_benchmark(Path(__import__("tempfile").mkdtemp())).read_text())
    return [BenchmarkItem(i["task"], i["question"], tuple(i["choices"]), i["answer"]) for i in data["items"]]


def test_stop_leaves_unscored_questions_empty(tiny_model_dir):
    import threading

    import torch
    from transformers import AutoModelForCausalLM

    from engine.evaluate.choice_scoring import score_questions
    from engine.evaluate.general_ability import choice_questions
    from engine.templates import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    stop = threading.Event()
    questions = choice_questions(synthetic_benchmark_items(), tokenizer)
    scores = score_questions(model, questions, pad_id=0, batch_tokens=200, on_done=lambda n: stop.set(), stop=stop)
    assert 0 < sum(s is not None for s in scores) < len(questions)


# --- intervals ----------------------------------------------------------------------------------------
def test_wilson_interval_has_its_stated_coverage():
    import numpy as np

    rng = np.random.default_rng(7)
    for p, n in ((0.3, 60), (0.6, 120), (0.9, 200)):
        right = rng.binomial(n, p, size=3000)
        covered = sum(low <= p <= high for low, high in (wilson_interval(int(k), n) for k in right))
        assert 0.93 <= covered / 3000 <= 0.975, (p, n, covered)


def test_paired_difference_interval_has_its_stated_coverage():
    import numpy as np

    rng = np.random.default_rng(11)
    n, p_gain, p_lose = 300, 0.05, 0.10  # true difference -0.05
    covered = 0
    trials = 400
    for trial in range(trials):
        draws = rng.choice(3, size=n, p=[p_gain, p_lose, 1 - p_gain - p_lose])
        base = [d == 1 or (d == 2 and k % 2 == 0) for k, d in enumerate(draws)]
        tuned = [d == 0 or (d == 2 and k % 2 == 0) for k, d in enumerate(draws)]
        diff = paired_difference(base, tuned, rounds=1000, seed=trial)
        covered += diff.low <= p_gain - p_lose <= diff.high
    assert 0.92 <= covered / trials <= 0.98


def test_paired_difference_is_seeded_and_zero_when_nothing_changed():
    base = [random.Random(3).random() < 0.6 for _ in range(200)]
    tuned = [b if k % 9 else not b for k, b in enumerate(base)]
    assert paired_difference(base, tuned) == paired_difference(base, tuned)
    same = paired_difference(base, base)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.below_zero


# --- verdict ------------------------------------------------------------------------------------------
def _comparison(base: list, tuned: list) -> Comparison:
    tasks = (BenchmarkTask("a", "Task A", "knowledge", "none"), BenchmarkTask("b", "Task B", "commonsense", "none"))
    items = tuple(BenchmarkItem("a" if k % 2 else "b", f"q{k}", ("x", "y"), 0, str(k)) for k in range(len(base)))
    return Comparison(Benchmark("test", "1", "d", tasks, items), base, tuned)


def test_verdict_needs_the_whole_interval_below_zero():
    base = [k % 5 != 0 for k in range(200)]  # 80% right
    slightly = [b and k not in (1, 3, 7) for k, b in enumerate(base)]  # three fewer: noise
    assert _comparison(base, slightly).to_dict()["verdict"] == UNCHANGED
    fell = [b and k % 2 == 0 for k, b in enumerate(base)]  # task A (odd items) collapses
    result = _comparison(base, fell).to_dict()
    assert result["verdict"] == FORGOT and result["tasks_fell"] == ["a"] and result["advice"]
    assert result["difference"]["ci"][1] < 0 and "Task A" in result["summary"]
    assert result["kept"] == pytest.approx(result["tuned"]["accuracy"] / result["base"]["accuracy"], abs=1e-3)
    better = _comparison(fell, base).to_dict()
    assert better["verdict"] == IMPROVED and better["kept"] == 1.0


# --- on trained runs: forgetting is flagged, an untouched adapter is not ------------------------------
@pytest.fixture(scope="module")
def knowing(tmp_path_factory, tiny_model_dir):
    """A tiny model that learned the synthetic benchmark's answers (so there is something to forget)."""
    folder = tmp_path_factory.mktemp("knowing")
    bench = synthetic_benchmark(folder)
    return knowing_model(folder / "model", tiny_model_dir, bench), bench


def test_untouched_adapter_is_no_measurable_change_and_overtraining_forgot(knowing, tmp_path):
    from engine.evaluate import evaluate_run

    base_dir, bench = knowing
    untouched = make_run(tmp_path / "untouched", base_dir, method="lora", steps=0)  # LoRA B starts at zero
    result = evaluate_run(untouched, examples=0, probe=False, benchmark_file=bench)["general_ability"]
    assert result["base"]["accuracy"] >= 0.9  # the base really knows the answers
    assert result["verdict"] == UNCHANGED and result["difference"] == {"value": 0.0, "ci": [0.0, 0.0],
                                                                       "gained": 0, "lost": 0}
    overtrained = make_run(tmp_path / "overtrained", base_dir, method="full", steps=25, lr=1e-2)
    results = evaluate_run(overtrained, examples=0, probe=False, benchmark_file=bench)
    general = results["general_ability"]
    assert general["verdict"] == FORGOT and general["difference"]["ci"][1] < 0, general["summary"]
    assert results["general_ability_kept"] < 0.8 and general["tasks_fell"]
    assert "Forgot" in results["summary"][-1]


def test_base_scores_come_from_the_cache_the_second_time(knowing, tmp_path, monkeypatch):
    from engine.evaluate import evaluate_run, general_ability

    base_dir, bench = knowing
    run = make_run(tmp_path / "run", base_dir, method="lora", steps=3, lr=1e-3)
    first = evaluate_run(run, examples=0, probe=False, benchmark_file=bench)["general_ability"]
    calls = []
    real = general_ability.score_items
    monkeypatch.setattr(general_ability, "score_items", lambda *a, **k: calls.append(len(a[2].items)) or real(*a, **k))
    second = evaluate_run(run, examples=0, probe=False, benchmark_file=bench)["general_ability"]
    assert calls == [len(json.loads(bench.read_text())["items"])]  # the tuned side only
    assert second["base"] == first["base"] and second["tuned"] == first["tuned"]


# --- the shipped benchmark ----------------------------------------------------------------------------
def test_shipped_benchmark_has_several_task_types_above_chance_and_its_sources():
    benchmark = load_benchmark()
    assert 200 <= len(benchmark.items) <= 800
    assert len({t.kind for t in benchmark.tasks}) >= 3 and len(benchmark.tasks) >= 4
    sources = (Path(benchmark.path).parent / "SOURCES.md").read_text(encoding="utf-8")
    for task in benchmark.tasks:
        assert task.licence and task.title.split(":")[0].split(" (")[0] in sources
    quick = benchmark.sized("quick")
    assert len(quick.items) == pytest.approx(len(benchmark.items) / 3, abs=len(benchmark.tasks))
    assert {t.id for t in benchmark.tasks} == {i.task for i in quick.items}
    assert all(i.key for i in benchmark.items) and len({i.key for i in benchmark.items}) == len(benchmark.items)
