"""`tunesmith-cli preview FILE --model M`: one example exactly as it goes into training.

Shows the full text with special tokens visible, each token coloured by whether it is learned or
masked, the example's token counts, and which examples of the file get cut at --max-length.
"""
from __future__ import annotations

import json

from engine.cli.inspect_cmd import add_data_arguments, measure_tokens

LEARNED_STYLE = "bold green"
MASKED_STYLE = "grey50"


def register(sub) -> None:
    from engine.config import TEMPLATES, DataConfig, field_info

    parser = sub.add_parser("preview", help="Show one example as training sees it: learned vs masked tokens.")
    add_data_arguments(parser)
    parser.add_argument("--model", default="starter", metavar="MODEL",
                        help="Whose tokenizer and template: 'starter' (default), a folder, a .gguf file or a hub id.")
    parser.add_argument("--row", type=int, default=0, metavar="N",
                        help="The row of the file to show (1-based; default: the first usable row).")
    parser.add_argument("--max-length", type=int, default=DataConfig().max_length,
                        help="Longest example in tokens; longer ones are cut at the end (default %(default)s).")
    parser.add_argument("--template", default="auto", choices=TEMPLATES,
                        help="Chat template: 'auto' uses the model's own (default).")
    parser.add_argument("--train-on-prompt", action="store_true", help="Learn the prompt tokens too.")
    parser.add_argument("--completion-separator", default="", metavar="SEP",
                        help=field_info("data", "completion_separator")["help"].replace("%", "%%"))
    parser.add_argument("--json", action="store_true",
                        help="Print one JSON object; 'pieces' is the list of {text, trained} per token.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.cli import UserError
    from engine.data.inspect import inspect_file
    from engine.models import resolve_model
    from engine.templates import load_tokenizer, render, template_name

    if args.max_length < 1:
        raise UserError(f"--max-length {args.max_length}: must be a positive number of tokens.")
    report = inspect_file(args.file, format=args.format, mapping=args.map)
    example = pick_example(report, args.row)
    model_dir = resolve_model(args.model)
    tokenizer = load_tokenizer(model_dir, template=args.template)
    rendered = render(example, tokenizer, max_length=args.max_length, train_on_prompt=args.train_on_prompt,
                      completion_separator=args.completion_separator)
    stats, warnings, _ = measure_tokens(report, str(model_dir), args.template, args.max_length)
    summary = {
        "file": report.file, "row": example.row, "format": report.format, "model": str(model_dir),
        "template": template_name(tokenizer), "max_length": args.max_length,
        "tokens": len(rendered.input_ids), "trained_tokens": sum(1 for p in rendered.pieces() if p["trained"]),
        "full_length": rendered.full_length, "truncated": rendered.truncated, "rejection": rendered.rejection,
    }
    if args.json:
        print(json.dumps({**summary, "pieces": rendered.pieces(), "stats": stats.to_dict(),
                          "warnings": warnings}, indent=2, ensure_ascii=False))
        return 0
    print_preview(summary, rendered.pieces(), stats, warnings)
    return 0


def pick_example(report, row: int):
    """The usable example at file row `row` (0: the first usable one); UserError when there is none."""
    from engine.cli import UserError

    if row == 0:
        return report.examples[0]
    for example in report.examples:
        if example.row == row:
            return example
    for rejection in report.rejected:
        if rejection.row == row:
            raise UserError(f"{report.file}, row {row} cannot be used: {rejection.reason}.")
    raise UserError(f"{report.file} has no row {row}: choose --row between 1 and {report.rows_total}.")


def print_preview(summary: dict, pieces: list, stats, warnings: list) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    # Without colour (a pipe, NO_COLOR) learned runs are bracketed instead, so the marks survive.
    bracket = console.no_color or not console.is_terminal
    counts = (f"{summary['tokens']} tokens: {summary['trained_tokens']} learned, "
              f"{summary['tokens'] - summary['trained_tokens']} masked")
    if summary["truncated"]:
        counts += f"; cut from {summary['full_length']} to max_length {summary['max_length']}"
    console.print(f"[bold]{escape(summary['file'])}[/bold], row {summary['row']} ({summary['format']}, "
                  f"template: {summary['template']})")
    console.print(counts)
    if bracket:
        console.print(escape("Legend: [[learned]] text is learned; text outside the brackets is masked "
                             "(not learned).\n"))
    else:
        console.print(Text.assemble("Legend: ", ("learned", LEARNED_STYLE), "  ", ("masked (not learned)",
                                                                                    MASKED_STYLE), "\n"))
    text = Text()
    previous = False
    for piece in pieces:
        if bracket and piece["trained"] != previous:
            text.append("[[" if piece["trained"] else "]]")
        text.append(piece["text"], style=None if bracket else (LEARNED_STYLE if piece["trained"] else MASKED_STYLE))
        previous = piece["trained"]
    if bracket and previous:
        text.append("]]")
    console.print(text)
    if summary["rejection"]:
        console.print(f"\n[red]This example is skipped in training: {escape(summary['rejection'])}.[/red]")
    console.print(f"\n[bold]Whole file[/bold] ({stats.count} examples): tokens min {stats.min}, median "
                  f"{stats.median}, p95 {stats.p95}, max {stats.max}; longer than {stats.max_length}: "
                  f"{stats.over_limit}")
    if stats.over_limit_rows:
        more = " ..." if stats.over_limit > 20 else ""
        console.print(f"  cut at max_length: rows {', '.join(map(str, stats.over_limit_rows[:20]))}{more}")
    for warning in warnings:
        console.print(f"[yellow]![/yellow] {escape(warning)}")
