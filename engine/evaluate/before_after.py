"""Before / after on held-out data: how the tuned model compares with the base model it came from.

`evaluate_run` measures, for base and tuned alike: loss and perplexity on the run's held-out
examples (answer tokens only, rendered exactly as in training); answers to the first N held-out
questions with exact match, chrF and ROUGE-L against the reference; general ability on the
built-in benchmark (engine.evaluate.general_ability: the forgetting verdict, with intervals); and the
short probe questions whose answers a person can read (engine.evaluate.probe). Results go to
RUN/eval/results.json (read back by `load_results`) with a self-contained RUN/eval/report.html beside it.

The held-out examples are the run's test rows (RUN/test.jsonl), which neither training nor the
choice of the best step ever saw. Runs without test rows (made before the test split, or with the
test share at 0) fall back to the validation rows, and the results say so (`heldout.note`). The
keys `val_examples` and `val_loss` keep their names for older readers and mean "the held-out rows"
whichever part those are; `heldout.part` says which.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

from engine import atomic
from engine.events import Notice, Progress
from engine.evaluate.heldout import answer_scoring, first_line, held_out_examples, question_prompt_ids
from engine.evaluate.loading import SIDES, load_run
from engine.evaluate.runfolder import RunFolder, heldout_part, open_run

RESULTS_FILE = "results.json"


class _Tracker:
    """Counts finished units of work and sends Progress events (with an ETA) to the sink."""

    def __init__(self, sink: Optional[Callable], total: int):
        self.sink, self.total, self.done, self.start = sink, max(1, total), 0, time.perf_counter()

    def say(self, message: str) -> None:
        if self.sink:
            self.sink(Notice(message=message))

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.step()

    def step(self) -> None:
        self.done += 1
        if self.sink:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            self.sink(Progress(step=self.done, total_steps=self.total, epoch=0.0, elapsed_s=elapsed, eta_s=eta))


def _rendered(run: RunFolder, rows: list, tokenizer) -> list[tuple[list[int], list[int]]]:
    """Held-out examples as (input_ids, labels), rendered with the training template and length."""
    from engine.data.formats import Example
    from engine.templates import render

    max_length = run.max_length()
    separator = run.completion_separator()  # completion-style text: the loss is on the answers, as in training
    rendered = (render(Example.from_dict(e), tokenizer, max_length=max_length, completion_separator=separator)
                for e in rows)
    return [(r.input_ids, r.labels) for r in rendered]


def _stopped(stop: Any) -> bool:
    return stop is not None and stop.is_set()


def _settings(run: RunFolder, examples: Optional[int], max_new_tokens: Optional[int]):
    """Generation settings, example count and the evaluation section of run.yaml (for the caller's overrides)."""
    from engine.config import EvaluationConfig
    from engine.evaluate.settings import GenerationSettings

    config = run.config()
    evaluation = config.evaluation if config else EvaluationConfig()
    settings = GenerationSettings(max_new_tokens=max_new_tokens or evaluation.max_new_tokens,
                                  temperature=evaluation.temperature, repetition_penalty=1.0)
    count = evaluation.examples if examples is None else examples
    return settings, max(0, count), evaluation


def _summary_lines(results: dict) -> list[str]:
    """The headline comparisons in plain words, shown at the top of reports."""
    base, tuned = results["base"], results["tuned"]
    part = heldout_part(results)
    lines = []
    if base.get("val_loss") is not None and tuned.get("val_loss") is not None:
        better = "better" if tuned["val_loss"] < base["val_loss"] else "not better"
        lines.append(f"{part.capitalize()} loss: base {base['val_loss']:.3f} -> tuned {tuned['val_loss']:.3f} "
                     f"(perplexity {base['perplexity']:.2f} -> {tuned['perplexity']:.2f}): the tuned model is "
                     f"{better} at predicting the held-out answers.")
    if results["examples"]:
        n = len(results["examples"])
        lines.append(f"Exact match on {n} held-out {part} questions: base {100 * base['exact_match']:.0f}% -> "
                     f"tuned {100 * tuned['exact_match']:.0f}%.")
        lines.append(f"chrF (0-100, closeness to the reference): base {base['chrf']:.1f} -> tuned {tuned['chrf']:.1f}; "
                     f"ROUGE-L: base {base['rouge_l']:.1f} -> tuned {tuned['rouge_l']:.1f}.")
    note = (results.get("answers") or {}).get("note")
    if note:
        lines.append(note)
    if results.get("preference"):
        lines.append(results["preference"]["verdict"])
    general = results.get("general_ability")
    if general:
        lines.append(general["summary"])
    probe = results.get("probe")
    if probe:
        lines.append(f"Probe questions answered right (strict grading): base {100 * probe['base']['accuracy']:.0f}% "
                     f"-> tuned {100 * probe['tuned']['accuracy']:.0f}% of {probe['base']['total']}.")
    return lines


def evaluate_run(run_dir, sink: Optional[Callable] = None, stop: Any = None, *, examples: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, probe: Optional[bool] = None, probe_file=None,
                 benchmark: Optional[str] = None, benchmark_file=None, use_cache: bool = True,
                 device: Optional[str] = None) -> dict[str, Any]:
    """Compare base and tuned on a finished run; return the results dict and save it in RUN/eval/.

    `sink` receives Notice (phase) and Progress events; setting `stop` ends early, and then the
    partial results are returned with "stopped": true and nothing is saved. `examples`,
    `max_new_tokens`, `probe` (on/off) and `benchmark` ("full", "quick" or "off") override run.yaml's
    evaluation section; `probe_file` and `benchmark_file` replace the built-in probe and benchmark
    with other files of the same layout; `use_cache=False` scores the base model again.
    """
    from engine.evaluate import metrics
    from engine.evaluate.benchmark import load_benchmark
    from engine.evaluate.generate import generate_batch
    from engine.evaluate.general_ability import measure
    from engine.evaluate.loss import perplexity, token_weighted_loss
    from engine.evaluate.preference import evaluate_preference, preference_pairs
    from engine.evaluate.probe import load_probe, run_probe

    started = time.time()
    run = open_run(run_dir)
    settings, count, evaluation = _settings(run, examples, max_new_tokens)
    use_probe = evaluation.probe if probe is None else probe
    size = evaluation.benchmark if benchmark is None else benchmark
    if sink:
        sink(Notice(message=f"Loading the model of {run.path.name}..."))
    loaded = load_run(run, device)
    heldout = run.heldout()
    if sink and heldout.note:
        sink(Notice(message=heldout.note, level="warning"))
    val = _rendered(run, heldout.rows, loaded.tokenizer)
    questions = held_out_examples(run)[:count]
    scoring = answer_scoring(run, heldout.rows, questions)
    probe_set = load_probe(probe_file) if use_probe else None
    suite = load_benchmark(benchmark_file).sized(size) if size != "off" else None
    pairs = preference_pairs(heldout.rows)
    per_side = len(val) + len(questions) + (len(probe_set.items) if probe_set else 0) + len(pairs)
    tracker = _Tracker(sink, 2 * per_side + (2 * len(suite.items) if suite else 0))

    results: dict[str, Any] = {
        "run_dir": str(run.path), "method": run.method, "base_model_path": str(run.base_model_path),
        "device": str(loaded.device), "heldout": heldout.to_dict(),
        "val_examples": len(val),  # the number of held-out rows measured, whichever part they are (kept for readers)
        "settings": settings.to_dict(), "answers": scoring,
        "base": {}, "tuned": {}, "examples": [], "general_ability": None, "general_ability_kept": None,
        "probe": None, "preference": None,
    }
    if suite is not None:
        tracker.say(f"Checking general ability on {len(suite.items)} benchmark questions (base model from the "
                    "cache where it was scored before)...")
        comparison = measure(loaded, suite, use_cache=use_cache, on_item=tracker.step, stop=stop)
        if comparison is not None:
            results["general_ability"] = comparison.to_dict()
            results["general_ability_kept"] = results["general_ability"]["kept"]
    answers: dict[str, list[str]] = {}
    probes = {}
    for side in SIDES:
        if _stopped(stop):
            break
        tracker.say(f"Measuring {heldout.part} loss ({side} model)...")
        with loaded.side(side) as model:
            loss = token_weighted_loss(model, val, on_item=tracker.step, stop=stop)
            results[side].update(val_loss=loss, perplexity=perplexity(loss))
            tracker.say(f"Answering {len(questions)} held-out questions ({side} model)...")
            prompts = [question_prompt_ids(question, loaded.tokenizer) for question in questions]
            answers[side] = generate_batch(model, loaded.tokenizer, prompts, settings, stop,
                                           on_batch=tracker.steps)
            if scoring["first_line_only"]:
                answers[side] = [first_line(answer) for answer in answers[side]]
        if probe_set and not _stopped(stop):
            tracker.say(f"Asking the probe questions ({side} model)...")
            probes[side] = run_probe(loaded, side, probe_set, on_item=tracker.step, stop=stop)

    answered = min(len(answers.get("base", [])), len(answers.get("tuned", [])))
    for side in SIDES:
        scores = [metrics.score_answer(a, q.reference) for a, q in zip(answers.get(side, [])[:answered], questions)]
        results[side].update(metrics.summarise(scores) or {"exact_match": None, "chrf": None, "rouge_l": None})
        if side in probes:
            results[side]["probe_accuracy"] = round(probes[side].accuracy, 4)
    for index, question in enumerate(questions[:answered]):
        results["examples"].append({
            "row": question.row, "prompt": question.prompt_text, "messages": question.messages,
            "reference": question.reference, "base": answers["base"][index], "tuned": answers["tuned"][index],
            "scores": {side: metrics.score_answer(answers[side][index], question.reference) for side in SIDES}})
    if len(probes) == 2 and not _stopped(stop):
        results["probe"] = {"base": probes["base"].to_dict(), "tuned": probes["tuned"].to_dict(),
                            "grading": probe_set.grading}
    if pairs and not _stopped(stop):
        tracker.say(f"Comparing base and tuned on {len(pairs)} held-out preference pairs...")
        results["preference"] = evaluate_preference(loaded, run, pairs, results["examples"], part=heldout.part,
                                                    on_item=tracker.step, stop=stop)
    results["summary"] = _summary_lines(results)
    results["seconds"] = round(time.time() - started, 1)
    results["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    if _stopped(stop):
        results["stopped"] = True
        return results
    results["stopped"] = False
    save_results(run, results)
    return results


def save_results(run: RunFolder, results: dict) -> Path:
    """Write RUN/eval/results.json (atomically) and the HTML report and loss plot beside it."""
    from engine.evaluate.report import write_report_files

    run.eval_dir.mkdir(parents=True, exist_ok=True)
    path = run.eval_dir / RESULTS_FILE
    atomic.write_text(path, json.dumps(results, indent=2, ensure_ascii=False))  # two evaluations may race
    write_report_files(run, results)
    return path


def load_results(run_dir) -> Optional[dict]:
    """The saved evaluation of a run (RUN/eval/results.json), or None when it was never evaluated."""
    path = Path(run_dir) / "eval" / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # a damaged file counts as "not evaluated": evaluating again rewrites it
