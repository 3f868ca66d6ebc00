"""Issue 12's three "must hold" cases, read from runs trained and evaluated with the defaults.

    TUNESMITH_HOME=/tmp/h tunesmith-cli train --data FILE --out RUN --events jsonl > RUN.events
    tunesmith-cli eval RUN --json --examples 100 > /dev/null
    .venv/bin/python -m bench.plan_cases RUN [RUN ...] [--probe constant-probe.jsonl]

For each run: its plan (steps x batch, keep general), the estimated and the real seconds of training
(the Planned event's estimate against the time from that event to Finished), the task metric on the
test split for base and tuned (chosen from the references: JSON orders -> valid JSON and field
accuracy; one repeated answer -> share of replies containing it; invented-product facts -> share of
replies containing the fact's value), the benchmark's general ability (accuracy with 95% intervals,
the paired difference and its verdict) and the answer to "What is the capital of France?".
`--probe FILE` also asks FILE's questions (prompt/completion rows) of both models: for the constant
set, password questions about places the training rows never name.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.plan_floor import order_fields_right

FRANCE = "What is the capital of France?"


def events(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fact_value(reference: str) -> str | None:
    """The invented fact a knowledge reference states (bench.quality_sets.PRODUCTS), or None."""
    from bench.quality_sets import PRODUCTS

    for product, facts in PRODUCTS.items():
        if product in reference:
            for value in sorted(facts.values(), key=len, reverse=True):
                if value in reference:
                    return value
    return None


def task_metric(examples: list[dict]) -> dict:
    references = [e["reference"] for e in examples]
    result: dict = {"test_rows": len(examples)}
    if references and all(r.strip().startswith("{") for r in references):
        for side in ("base", "tuned"):
            checks = [order_fields_right(e[side], e["reference"]) for e in examples]
            result[side] = {"valid_json": round(sum(ok for ok, _ in checks) / len(checks), 3),
                            "field_accuracy": round(sum(f for _, f in checks) / len(checks), 3)}
    elif references and len(set(references)) == 1:
        for side in ("base", "tuned"):
            result[side] = {"constant": round(sum(references[0] in e[side] for e in examples) / len(examples), 3)}
    else:
        values = [fact_value(r) for r in references]
        rows = [(e, v) for e, v in zip(examples, values) if v]
        for side in ("base", "tuned"):
            right = sum(v.lower() in e[side].lower() for e, v in rows)
            result[side] = {"facts_right": round(right / max(1, len(rows)), 3), "facts": len(rows)}
    return result


def ask_probe(run: Path, probe: Path) -> dict:
    from engine.evaluate.generate import generate_batch
    from engine.evaluate.loading import load_run
    from engine.evaluate.runfolder import open_run
    from engine.evaluate.settings import GenerationSettings
    from engine.templates import prompt_ids

    rows = [json.loads(line) for line in probe.read_text(encoding="utf-8").splitlines() if line.strip()]
    loaded = load_run(open_run(run))
    settings = GenerationSettings(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)
    ids = [prompt_ids([{"role": "user", "content": r["prompt"]}], loaded.tokenizer) for r in rows]
    out = {}
    for side in ("base", "tuned"):
        with loaded.side(side) as model:
            replies = generate_batch(model, loaded.tokenizer, ids, settings, batch_size=12)
        out[side] = round(sum(r["completion"] in reply for r, reply in zip(rows, replies)) / len(rows), 3)
        out[f"{side}_first"] = replies[0]
    return out


def summarise(run: Path, probe: Path | None) -> dict:
    results = json.loads((run / "eval" / "results.json").read_text(encoding="utf-8"))
    log = events(run)
    planned = next((e for e in log if e["type"] == "Planned"), {})
    finished = next((e for e in log if e["type"] in ("Finished", "Failed")), {})
    progress = [e for e in log if e["type"] == "Progress"]
    general = results.get("general_ability") or {}
    # the estimate covers what follows the Planned event: steps, validations, general answers, checkpoints
    real_s = round(finished["time"] - planned["time"], 1) if planned and finished else None
    row = {"run": str(run), "plan": planned.get("settings"), "estimate_s": planned.get("estimate_s"),
           "real_s": real_s, "error": round(planned["estimate_s"] / real_s - 1, 3) if real_s else None,
           "steps_elapsed_s": progress[-1]["elapsed_s"] if progress else None, "result": finished.get("reason"),
           "task": task_metric(results["examples"])}
    if general:
        row["general"] = {side: general[side] for side in ("base", "tuned")}
        row["general"].update(difference=general["difference"], verdict=general["verdict"])
    probe_answers = (results.get("probe") or {})
    for side in ("base", "tuned"):
        answers = (probe_answers.get(side) or {}).get("answers") or []
        row[f"france_{side}"] = next((a.get("reply") for a in answers if a.get("prompt") == FRANCE), None)
        row[f"probe_{side}"] = (probe_answers.get(side) or {}).get("accuracy")
    if probe is not None:
        row["similar_questions"] = ask_probe(run, probe)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--probe", type=Path, help="prompt/completion rows asked of both models")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(summarise(run, args.probe), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
