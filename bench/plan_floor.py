"""How many optimizer steps does a small data set need before the model learns anything? Measure it.

    .venv/bin/python -m bench.plan_floor --sets /tmp/sets --out /tmp/floor \
        constant-16:4:32 constant-16:1:64 sample-64:8:32 ...

Each argument is DATA:BATCH:STEPS[:KEY=VALUE,...] (DATA is a file in --sets without .jsonl, or
`sample-N`: the first N rows of resources/sample_dataset.jsonl). For each, LoRA on the starter model
with learning rate 2e-4 (cosine, 5% warm-up, no validation), then greedy answers of the tuned model to:
- constant sets: the held-out password questions (learned = share answered VORBLAX-7);
- sample sets: 24 orders from the end of the sample file (valid JSON, all five fields right);
- knowledge sets: knowledge-test.jsonl, phrasings never trained on (share of replies with the fact);
- always: six general questions (France among them) and whether any answer leaks the training answer.
One JSON line per run on stdout (and in --out/results.jsonl).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GENERAL = ["What is the capital of France?", "What is 5 + 3? Answer with a number.",
           "What is the opposite of cold?", "Name a fruit that is yellow.",
           "What is the capital of Japan?", "Write one sentence about dogs."]
GENERAL_ANSWERS = ["Paris", "8", "hot", "banana", "Tokyo", ""]
SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "sample_dataset.jsonl"
SAMPLE_TEST = 24  # the last rows of the sample file: never trained on by sample-N with N <= 576


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def data_file(name: str, sets: Path, work: Path) -> Path:
    if name.startswith("sample-"):
        count = int(name.split("-", 1)[1])
        path = work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in sample_rows()[:count]), encoding="utf-8")
        return path
    return sets / f"{name}.jsonl"


def order_fields_right(reply: str, reference: str) -> tuple[bool, float]:
    """(valid JSON object, share of the reference's fields with the same value)."""
    want = json.loads(reference)
    try:
        got = json.loads(reply.strip())
    except ValueError:
        return False, 0.0
    if not isinstance(got, dict):
        return False, 0.0
    return True, sum(got.get(k) == v for k, v in want.items()) / len(want)


def ask(loaded, prompts: list[str], max_new_tokens: int, side: str = "tuned") -> list[str]:
    from engine.evaluate.generate import generate_batch
    from engine.evaluate.settings import GenerationSettings
    from engine.templates import prompt_ids

    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    ids = [prompt_ids([{"role": "user", "content": p}], loaded.tokenizer) for p in prompts]
    with loaded.side(side) as model:
        return generate_batch(model, loaded.tokenizer, ids, settings, batch_size=12)


def score(loaded, name: str, sets: Path, side: str = "tuned") -> dict:
    from bench.quality_sets import CONSTANT_ANSWER

    result: dict = {}
    if name.startswith("constant"):
        probe = [json.loads(line)["prompt"] for line in (sets / "constant-probe.jsonl").read_text().splitlines()]
        replies = ask(loaded, probe, 12, side)
        result["learned"] = round(sum(CONSTANT_ANSWER in r for r in replies) / len(replies), 3)
        result["probe_replies"] = replies[:3]
    elif name.startswith("knowledge"):
        rows = [json.loads(line) for line in (sets / "knowledge-test.jsonl").read_text().splitlines()]
        replies = ask(loaded, [r["prompt"] for r in rows], 24, side)
        result["facts_right"] = round(sum(r["answer"].lower() in reply.lower() for r, reply in zip(rows, replies))
                                      / len(rows), 3)
        result["probe_replies"] = replies[:3]
    elif name.startswith("sample"):
        rows = sample_rows()[-SAMPLE_TEST:]
        replies = ask(loaded, [r["messages"][0]["content"] for r in rows], 48, side)
        checks = [order_fields_right(reply, r["messages"][1]["content"]) for reply, r in zip(replies, rows)]
        result["valid_json"] = round(sum(ok for ok, _ in checks) / len(checks), 3)
        result["field_accuracy"] = round(sum(f for _, f in checks) / len(checks), 3)
        result["probe_replies"] = replies[:2]
    from engine.evaluate.probe import load_probe, run_probe

    probe = run_probe(loaded, side, load_probe())
    result["probe_accuracy"] = round(probe.accuracy, 3)
    result["probe_leaks"] = sum(CONSTANT_ANSWER in a["reply"] or a["reply"].startswith("{") for a in probe.answers)
    general = ask(loaded, GENERAL, 24, side)
    result["general_right"] = sum(bool(a) and a.lower() in r.lower() for a, r in zip(GENERAL_ANSWERS, general))
    result["general_leaks"] = sum(CONSTANT_ANSWER in r or r.startswith("{") for r in general)
    result["france"] = general[0][:80]
    result["general_replies"] = [g[:60] for g in general[1:]]
    return result


def _set_objective(value: str) -> None:
    from engine.train import keep_general

    keep_general.objective_for = lambda method: value


def _set_weight(value: str) -> None:
    from engine.train import keep_general

    keep_general.WEIGHT = float(value)


def _set_share(value: str) -> None:
    from engine.train import plan

    plan.KEEP_GENERAL_SHARE = float(value)


# Keep-general variants compared by measurement (not settings a user has): kg.objective=kl|replay,
# kg.weight=W (the term's weight), kg.share=S (general examples per step as a share of the batch).
LEVERS = {"kg.objective": _set_objective, "kg.weight": _set_weight, "kg.share": _set_share}


def _reset_levers() -> None:
    import importlib

    from engine.train import keep_general, plan

    for module in (keep_general, plan):
        importlib.reload(module)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--sets", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", action="store_true", help="Also score the base model once per data set.")
    parser.add_argument("--score-only", action="store_true", help="Score runs already in --out; train nothing.")
    args = parser.parse_args(argv)

    from engine import config as cfg
    from engine.evaluate.loading import load_run
    from engine.train import run_training
    from engine.evaluate.runfolder import open_run

    args.out.mkdir(parents=True, exist_ok=True)
    based = set()
    for spec in args.runs:
        name, batch, steps, *rest = spec.split(":")
        config = cfg.RunConfig()
        config.data.path = str(data_file(name, args.sets, args.out))
        config.data.val_fraction = 0.0
        config.training.plan, config.training.keep_general = "custom", "off"  # KEY=VALUE may turn it on
        config.training.batch_size, config.training.max_steps = int(batch), int(steps)
        config.training.eval_every = config.training.save_every = 10**6
        _reset_levers()
        for pair in (rest[0].split(",") if rest else []):
            key, _, value = pair.partition("=")
            if key in LEVERS:
                LEVERS[key](value)
            else:
                cfg.set_value(config, key, value)
        config.out = str(args.out / spec.replace(":", "_").replace("=", "-").replace(",", "_"))
        began = time.monotonic()
        finished = None if args.score_only else run_training(config)
        seconds = time.monotonic() - began
        loaded = load_run(open_run(Path(config.out)))
        row = {"run": spec, "seconds": round(seconds, 1), "result": "scored only" if args.score_only else getattr(finished, "reason", str(finished))}
        row.update(score(loaded, name, args.sets))
        if args.base and name not in based:
            based.add(name)
            row["base"] = score(loaded, name, args.sets, side="base")
        line = json.dumps(row)
        print(line, flush=True)
        with open(args.out / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
