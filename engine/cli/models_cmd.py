"""`tunesmith-cli models [--json] [--import FILE_OR_ID]`: what can be trained."""
from __future__ import annotations

import json


def register(sub) -> None:
    parser = sub.add_parser("models", help="List the models available for training.")
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    parser.add_argument("--import", dest="import_spec", metavar="GGUF_OR_FOLDER_OR_HUB_ID",
                        help="Import a model first (a .gguf file, a Hugging Face folder, or a hub id).")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine import models

    extra = ()
    if args.import_spec:
        folder = models.resolve_model(args.import_spec)
        extra = (str(folder),)
    found = models.list_models(extra_folders=extra)
    seen, unique = set(), []
    for info in found:
        if info.path not in seen:
            seen.add(info.path)
            unique.append(info)
    if args.json:
        print(json.dumps([m.to_dict() for m in unique], indent=2))
        return 0
    if not unique:
        print("No models yet. Run `tunesmith-cli setup` to prepare the starter model.")
        return 0
    from rich.console import Console
    from rich.table import Table

    from engine.model_facts import starter_note, unverified_warning

    table = Table("name", "family", "parameters", "stored as", "chat template", "verified", "source", "path")
    for m in unique:
        table.add_row(m.name, m.family, f"{m.parameters / 1e6:.1f} M", m.stored_precision,
                      "yes" if m.has_chat_template else "no", "yes" if m.verified else "NO", m.source, m.path)
    console = Console()
    console.print(table)
    if any(m.source == "starter" for m in unique):
        console.print(starter_note())
    for family in sorted({m.family for m in unique if not m.verified}):
        console.print(unverified_warning(family))
    return 0
