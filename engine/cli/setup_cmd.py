"""`tunesmith-cli setup`: prepare the starter model once (what `make run` and `make test` call)."""
from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("setup", help="Prepare the built-in starter model (once; later calls are instant).")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine import models

    if models.starter_ready():
        print(f"Starter model ready: {models.starter_dir()}")
        return 0

    def show(message: str, fraction: float) -> None:
        print(f"[{fraction:4.0%}] {message}", flush=True)

    folder = models.prepare_starter(show)
    print(f"Starter model ready: {folder}")
    return 0
