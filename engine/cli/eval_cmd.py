"""`tunesmith-cli eval RUN_DIR [--json] [--examples N] [--report FILE]`: base versus tuned on held-out data.

Prints the comparison (or the full results as JSON), saves it in RUN/eval/, and can write a
self-contained HTML or Markdown report.
"""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    parser = sub.add_parser("eval", help="Compare the tuned model with its base model on held-out data.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="The run folder that training created.")
    parser.add_argument("--json", action="store_true", help="Print the full results as JSON.")
    parser.add_argument("--examples", type=int, metavar="N",
                        help="Held-out questions answered by both models (default: evaluation.examples in run.yaml).")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="Longest answer per question, in tokens.")
    parser.add_argument("--no-probe", action="store_true",
                        help="Skip the general-ability check (faster; no 'general ability kept' score).")
    parser.add_argument("--report", metavar="FILE",
                        help="Also write a report to FILE: .html (default) or .md, one self-contained file.")
    parser.set_defaults(func=run)


def _progress_printer():
    """A sink that shows phases and a one-line progress counter on stderr (stdout stays clean for --json)."""
    from engine.events import Notice, Progress

    def sink(event) -> None:
        if isinstance(event, Notice):
            print(f"\r{event.message}".ljust(70), file=sys.stderr)
        elif isinstance(event, Progress):
            eta = f", about {event.eta_s:.0f} s left" if event.eta_s is not None else ""
            print(f"\r  {event.step}/{event.total_steps}{eta}".ljust(40), end="", file=sys.stderr, flush=True)

    return sink


def _print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from engine.evaluate.report import comparison_rows, heldout_line

    console = Console()
    console.print(heldout_line(results), markup=False)
    for line in results["summary"]:
        console.print(f"- {line}", markup=False)
    table = Table("", "base", "tuned")
    for name, base, tuned in comparison_rows(results):
        table.add_row(name, base, tuned)
    console.print(table)
    forgetting = results.get("forgetting")
    if forgetting and forgetting["advice"]:
        console.print("To keep more of the general ability:")
        for advice in forgetting["advice"]:
            console.print(f"  - {advice}", markup=False)
    console.print(f"Saved in {results['run_dir']}/eval/ (results.json, report.html).", markup=False)


def run(args) -> int:
    from engine.cli import UserError
    from engine.evaluate import evaluate_run, export_report

    if args.examples is not None and args.examples < 0:
        raise UserError("--examples must be 0 or more.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be 1 or more.")
    from engine.cli.chat_cmd import quiet_loading

    quiet_loading()
    results = evaluate_run(args.run_dir, sink=_progress_printer(), examples=args.examples,
                           max_new_tokens=args.max_new_tokens, probe=False if args.no_probe else None)
    print(file=sys.stderr)
    report = export_report(args.run_dir, args.report) if args.report else None
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        _print_table(results)
    if report:
        print(f"Report written to {report}", file=sys.stderr)
    return 0
