"""`tunesmith-cli`: everything the window can do, headless.

Each subcommand lives in its own module with `register(subparsers)`; heavy libraries are imported
inside the commands so that `--help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from engine.errors import TunesmithError

# subcommand name -> module under engine.cli
COMMANDS = {
    "setup": "setup_cmd",
    "models": "models_cmd",
    "inspect": "inspect_cmd",
    "preview": "preview_cmd",
    "train": "train_cmd",
    "chat": "chat_cmd",
    "eval": "eval_cmd",
    "export": "export_cmd",
    "data": "data_cmd",
    "gpu": "gpu_cmd",
}


class UserError(TunesmithError):
    """An error caused by the user's input: printed as one clear message, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith-cli", description="Fine-tune a language model, headless.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"engine.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"engine.cli.{module_name}":
                raise
            continue  # a command not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TunesmithError as exc:  # every problem the user can fix, whichever part raised it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
