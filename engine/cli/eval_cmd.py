"""`tunesmith-cli eval RUN_DIR [--json] [--benchmark quick|full|off] [--report FILE]`: base versus tuned.

Prints the comparison (or the full results as JSON), saves it in RUN/eval/, and can write a
self-contained HTML or Markdown report.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser("eval", help="Compare the tuned model with its base model on held-out data.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="The run folder that training created.")
    parser.add_argument("--json", action="store_true", help="Print the full results as JSON.")
    parser.add_argument("--examples", type=int, metavar="N",
                        help="Held-out questions answered by both models (default: evaluation.examples in run.yaml).")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="Longest answer per question, in tokens.")
    parser.add_argument("--benchmark", choices=("full", "quick", "off"),
                        help="General-ability check on the built-in benchmark: full (default: evaluation.benchmark "
                             "in run.yaml), quick (a third of the questions, wider intervals) or off.")
    parser.add_argument("--no-cache", action="store_true",
                        help="Score the base model on the benchmark again instead of reusing its cached scores.")
    parser.add_argument("--no-probe", action="store_true", help="Skip the short probe questions.")
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

    from engine.evaluate.report import comparison_rows, difference_text, heldout_line, percent, with_interval

    console = Console()
    console.print(heldout_line(results), markup=False)
    for line in results["summary"]:
        console.print(f"- {line}", markup=False)
    table = Table("", "base", "tuned")
    for name, base, tuned in comparison_rows(results):
        table.add_row(name, base, tuned)
    console.print(table)
    preference = results.get("preference")
    if preference:
        from engine.evaluate.preference_report import preference_rows

        pairs = Table(f"Preference pairs ({preference['pairs']} held out)", "base", "tuned")
        for name, base, tuned in preference_rows(preference):
            pairs.add_row(name, base, tuned)
        console.print(pairs)
    general = results.get("general_ability")
    if general:
        tasks = Table("General ability: task", "chance", "base", "tuned", "difference (95% interval)")
        for row in general["per_task"]:
            tasks.add_row(row["title"], percent(row["chance"]), with_interval(row["base"]), with_interval(row["tuned"]),
                          difference_text(row["difference"]) + ("  fell" if row["fell"] else ""))
        tasks.add_row("All tasks", percent(general["chance"]), with_interval(general["base"]),
                      with_interval(general["tuned"]), difference_text(general["difference"]))
        console.print(tasks)
        if general["advice"]:
            console.print("To keep more of the general ability:")
            for advice in general["advice"]:
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

    from engine.train.details import DETAILS_FILE, LibraryMessages

    quiet_loading()
    with LibraryMessages() as library:  # the libraries' own notes join the run's details.log, as in training
        library.attach(Path(args.run_dir) / DETAILS_FILE)
        results = evaluate_run(args.run_dir, sink=_progress_printer(), examples=args.examples,
                               max_new_tokens=args.max_new_tokens, probe=False if args.no_probe else None,
                               benchmark=args.benchmark, use_cache=not args.no_cache)
    print(file=sys.stderr)
    report = export_report(args.run_dir, args.report) if args.report else None
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        _print_table(results)
    if report:
        print(f"Report written to {report}", file=sys.stderr)
    return 0
