"""`make bench`: race Tunesmith's engine against a plain transformers + PEFT script, side by side.

Every run is a fresh child process (fair resident memory, no warm caches shared), the sides
alternate (A B A B) when repeated, and the end is a table of ratios against the targets plus a
JSON file with every number. See BENCHMARKS.md for the method and the recorded results.

    python bench/race.py                 # the CPU race on the starter model (tens of minutes)
    python bench/race.py --quick         # a smoke check: tiny numbers, one repeat
    python bench/race.py --gpu           # QLoRA on CUDA: starter model and a random ~1B llama
    python bench/race.py --only train,levers --repeats 3 --set training.threads=1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.child import SPAWN_ENV  # noqa: E402
from bench.plan import SECTIONS, Plan, build_plan  # noqa: E402
from bench.report import build_rows, format_table  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/race.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke check: few examples, short rows, one repeat")
    parser.add_argument("--gpu", action="store_true", help="QLoRA on CUDA: starter model and a random ~1B llama")
    parser.add_argument("--model", default="starter", help="'starter' (default), a model folder, or a folder with only config and "
                        "tokenizer files (given random weights: speed and memory only)")
    parser.add_argument("--data", default="", help="alpaca JSON (default: the shared alpaca_en_demo.json)")
    parser.add_argument("--examples", type=int, default=0, help="training rows per run (default: by mode)")
    parser.add_argument("--max-length", type=int, default=0, help="longest example in tokens (default: 512)")
    parser.add_argument("--batch", type=int, default=8, help="effective batch (examples per optimizer step)")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=0, help="A B rounds per race (default: 2, quick: 1)")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="engine setting for our side only, e.g. training.packing=false (repeatable)")
    parser.add_argument("--tokenizer-from", default="", help="--gpu: tokenizer for the random 1B model "
                        "(default: the starter's, or --model)")
    parser.add_argument("--workdir", default="", help="where runs and logs go (default: a new temp folder)")
    parser.add_argument("--json", default="", help="where the JSON results go (default: WORKDIR/race.json)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds before one child process is killed")
    args = parser.parse_args(argv)
    unknown = [s for s in filter(None, args.only.split(",")) if s not in SECTIONS]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: unknown section; choose from {', '.join(SECTIONS)}")
    for pair in args.set:
        if "=" not in pair:
            parser.error(f"--set {pair}: write it as KEY=VALUE, e.g. training.packing=false")
    return args


def spawn(module: str, spec: dict, workdir: Path, label: str, timeout: int, extra_args: tuple = ()) -> dict:
    """Run `python -m module [extra] JOB RESULT` in a fresh process; its output goes to a log file."""
    jobs = workdir / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%H%M%S')}-{label}"
    job_path, result_path, log_path = jobs / f"{stem}.job.json", jobs / f"{stem}.result.json", jobs / f"{stem}.log"
    job_path.write_text(json.dumps(spec, default=str), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env[SPAWN_ENV] = repr(time.time())
    command = [sys.executable, "-m", module, *extra_args, str(job_path), str(result_path)]
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            code = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout} s (log: {log_path})"}
    if not result_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return {"error": f"exited with code {code} without a result (log: {log_path}): " + " | ".join(tail)}
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["log"] = str(log_path)
    return result


def say(message: str) -> None:
    print(message, flush=True)


def summary_line(label: str, result: dict) -> str:
    """One line per finished run, so a long race shows it is alive."""
    if "unavailable" in result:
        return f"  {label}: not available ({result['unavailable']})"
    if "error" in result:
        return f"  {label}: FAILED: {result['error']}"
    speed = (result.get("throughput") or {}).get("tokens_per_s")
    parts = [f"{speed:.0f} tok/s" if speed else None,
             f"peak RSS {result['peak_rss_mb']:.0f} MiB" if result.get("peak_rss_mb") else None,
             f"{result['total_s']:.1f} s" if result.get("total_s") else None]
    return f"  {label}: " + ", ".join(p for p in parts if p) if any(parts) else f"  {label}: done"


def execute(plan: Plan, workdir: Path, timeout: int) -> dict[str, list[dict]]:
    """Run the plan's rounds in order (A B A B), then its probes; results by run label."""
    results: dict[str, list[dict]] = {}
    for number, round_runs in enumerate(plan.rounds, start=1):
        say(f"Round {number}/{len(plan.rounds)}")
        for run in round_runs:
            spec = run.spec_for(results)
            say(f"  starting {run.label}...")
            result = spawn(run.module, spec, workdir, run.label, timeout, run.extra_args)
            results.setdefault(run.label, []).append(result)
            say(summary_line(run.label, result))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tunesmith-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"Tunesmith race: working folder {workdir}")
    try:
        plan = build_plan(args, workdir)  # plain-words problems (data file, --set key) exit with a message
    except Exception as exc:  # a model that cannot be resolved or loaded: one plain line, not a traceback
        print(f"error: could not prepare the race: {exc}", file=sys.stderr)
        return 2
    say(plan.describe())
    started = time.time()
    results = execute(plan, workdir, args.timeout)
    rows = build_rows(results, plan)
    table = format_table(rows)
    say("\n" + table)
    out = Path(args.json) if args.json else workdir / "race.json"
    out.write_text(json.dumps({"meta": plan.meta(), "seconds": time.time() - started, "rows": rows,
                               "runs": results}, indent=1, default=str), encoding="utf-8")
    say(f"\nAll numbers: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
