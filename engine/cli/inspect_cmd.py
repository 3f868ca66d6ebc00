"""`tunesmith-cli inspect FILE`: what is in a data file, which rows cannot be used and why.

With `--model`, token-length statistics too (min, median, p95, max, how many exceed --max-length).
"""
from __future__ import annotations

import json

SHOWN_REJECTIONS = 30  # the text output lists this many rejected rows; --json lists all


def add_data_arguments(parser) -> None:
    """FILE, --format and --map: shared with `preview`."""
    from engine.config import FORMATS

    parser.add_argument("file", metavar="FILE", help="JSON, JSONL, CSV, TSV, Parquet, or a saved dataset folder.")
    parser.add_argument("--format", default="auto", choices=FORMATS,
                        help="The data layout; 'auto' detects it (default).")
    parser.add_argument("--map", action="append", default=[], metavar="COLUMN=ROLE",
                        help="Use COLUMN as ROLE (system, instruction, input, output, prompt, completion, "
                             "messages, conversations, text, chosen, rejected); repeatable, e.g. --map "
                             "question=prompt --map answer=completion.")


def register(sub) -> None:
    from engine.config import TEMPLATES, DataConfig

    parser = sub.add_parser("inspect", help="Check a data file: layout, usable rows, rejected rows and why.")
    add_data_arguments(parser)
    parser.add_argument("--model", metavar="MODEL",
                        help="Also measure token lengths with this model's tokenizer ('starter', a folder, a "
                             ".gguf file or a hub id).")
    parser.add_argument("--max-length", type=int, default=DataConfig().max_length,
                        help="Token limit to count examples against (with --model; default %(default)s).")
    parser.add_argument("--template", default="auto", choices=TEMPLATES, help="Chat template (with --model).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.data.inspect import inspect_file

    report = inspect_file(args.file, format=args.format, mapping=args.map)
    stats, warnings, pairs = None, list(report.warnings), None
    if args.model:
        stats, extra, pairs = measure_tokens(report, args.model, args.template, args.max_length)
        warnings.extend(extra)
    if args.json:
        data = report.to_dict()
        data["warnings"] = warnings
        data["token_stats"] = stats.to_dict() if stats else None
        if pairs is not None:
            data["pair_lengths"] = pairs
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print_report(report, stats, warnings, pairs)
    return 0


def measure_tokens(report, model_spec: str, template: str, max_length: int):
    """Token statistics of the report's examples with a model's tokenizer, the warnings they raise, and for
    preference data how the chosen and rejected answers compare in length (else None)."""
    from engine.data.stats import token_stats
    from engine.models import resolve_model
    from engine.templates import format_mismatch_warning, load_tokenizer

    tokenizer = load_tokenizer(resolve_model(model_spec), template=template)
    stats = token_stats(report.examples, tokenizer, max_length=max_length)
    warnings = [w for w in [format_mismatch_warning(tokenizer, report.format)] if w]
    if stats.over_limit:
        warnings.append(f"{stats.over_limit} examples are longer than {max_length} tokens and will be cut at the "
                        "end; raise max_length if their endings matter.")
    pairs = None
    if report.format == "preference":
        from engine.data.preference_build import answer_token_counts, length_difference

        pairs = length_difference(answer_token_counts(report.examples, tokenizer))
    return stats, warnings, pairs


def print_report(report, stats, warnings, pairs=None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{escape(report.file)}[/bold]")
    console.print(f"format: [bold]{report.format}[/bold] ({report.container}), "
                  f"columns: {escape(', '.join(map(str, report.columns)))}")
    if report.mapping:
        console.print("mapping: " + escape(", ".join(f"{c} -> {r}" for c, r in report.mapping.items())))
    console.print(f"rows: {report.rows_total} total, [green]{report.rows_valid} usable[/green], "
                  f"[{'red' if report.rejected else 'green'}]{len(report.rejected)} rejected[/]")
    if report.rejected:
        console.print("\n[bold]Rejected rows[/bold]")
        for rejection in report.rejected[:SHOWN_REJECTIONS]:
            where = f" (field '{rejection.field}')" if rejection.field else ""
            console.print(f"  row {rejection.row}: {escape(rejection.reason)}{escape(where)}")
        if len(report.rejected) > SHOWN_REJECTIONS:
            console.print(f"  ... and {len(report.rejected) - SHOWN_REJECTIONS} more (--json lists all)")
        console.print("\n[bold]Rejected per reason[/bold]")
        for reason, count in report.reason_counts.items():
            console.print(f"  {count:>6}  {escape(reason)}")
    proposal = report.completion_separator
    if proposal:
        console.print(f"\n[bold]Completion separator[/bold]: '{escape(proposal.separator)}' ({escape(proposal.why)}). "
                      f"Train with --set data.completion_separator='{escape(proposal.separator)}' to learn and "
                      "score only what follows it.")
    if stats:
        console.print(f"\n[bold]Token lengths[/bold] ({stats.count} examples): min {stats.min}, median "
                      f"{stats.median}, p95 {stats.p95}, max {stats.max}; over {stats.max_length}: "
                      f"{stats.over_limit}")
        if stats.over_limit_rows:
            rows = ", ".join(map(str, stats.over_limit_rows[:20]))
            more = " ..." if stats.over_limit > 20 else ""
            console.print(f"  rows over the limit: {rows}{more}")
    if pairs and pairs["pairs"]:
        console.print(f"\n[bold]Answer lengths[/bold]: the chosen answer is longer in "
                      f"{100 * pairs['chosen_longer_share']:.0f}% of {pairs['pairs']} pairs (median chosen - rejected: "
                      f"{pairs['median_difference']:+g} tokens)")
    if warnings:
        console.print("\n[bold yellow]Warnings[/bold yellow]")
        for warning in warnings:
            console.print(f"  [yellow]![/yellow] {escape(warning)}")
