"""Does the time estimate hold? The plan's estimate against the real wall time of `tunesmith-cli train`.

    .venv/bin/python -m bench.plan_timing --out /tmp/timing DATA.jsonl [DATA.jsonl ...] [--set KEY=VALUE]

For each file, in order: the estimate exactly as `--print-plan` and the Method view make it (measuring
this machine's speed first if nothing is stored yet), then `tunesmith-cli train --data FILE` with
nothing else, timed from start to exit. Runs share the data folder (TUNESMITH_HOME), so the second
and later estimates use the rates the earlier runs left, as a user's would. One JSON line per file.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from engine import config as cfg
    from engine.train.preview import make_preview

    args.out.mkdir(parents=True, exist_ok=True)
    cli = str(Path(sys.executable).with_name("tunesmith-cli"))
    for data in args.data:
        config = cfg.RunConfig()
        config.data.path = str(data)
        for pair in args.set:
            key, _, value = pair.partition("=")
            cfg.set_value(config, key, value)
        began = time.monotonic()
        preview = make_preview(config, say=lambda message: print(message, file=sys.stderr))
        preview_s = time.monotonic() - began
        run_dir = args.out / data.stem
        command = [cli, "train", "--data", str(data), "--out", str(run_dir), "--events", "jsonl"]
        command += [part for pair in args.set for part in ("--set", pair)]
        began = time.monotonic()
        with open(args.out / f"{data.stem}.events.jsonl", "w", encoding="utf-8") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
        actual = time.monotonic() - began
        e = preview.estimate
        row = {"data": data.name, "examples": preview.train_examples, "steps": preview.plan.steps,
               "batch": preview.plan.batch_size, "keep_general": preview.plan.keep_general,
               "rates": preview.rate.source, "estimate_s": round(e.total_s, 1), "actual_s": round(actual, 1),
               "error_percent": round(100 * (e.total_s - actual) / actual, 1), "exit": code,
               "estimate_parts": {k: round(v, 1) for k, v in (("startup", e.startup_s), ("steps", e.steps_s),
                                                              ("validation", e.validation_s),
                                                              ("answers", e.answers_s), ("saves", e.saves_s))},
               "preview_s": round(preview_s, 1)}
        line = json.dumps(row)
        print(line, flush=True)
        with open(args.out / "timing.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
