"""Frozen-bundle entry point of the window (`tunesmith`).

freeze_support() must run before anything else: a worker the window spawns (training, chat,
evaluation) is this same executable started again with multiprocessing's arguments, and this
call turns it into that worker instead of a second window.

`tunesmith --check-worker` is a packaging self-check (packaging/smoke.sh): it spawns one worker
process the way the window does and has it import the engine's worker module.
"""
import multiprocessing
import sys

multiprocessing.freeze_support()


def check_worker() -> int:
    """Spawn a child of this executable, import engine.worker in it, and report; 0 when it worked."""
    from gui.child_entry import resolve_target

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        target = pool.apply(resolve_target, ("engine.worker:train_main",))
    print(f"spawned worker imported {target.__module__}.{target.__name__}")
    return 0 if target.__name__ == "train_main" else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-worker"]:
        raise SystemExit(check_worker())
    from gui.app import main

    raise SystemExit(main())
