"""Frozen-bundle entry point of the command line (`tunesmith-cli`); see entry_gui.py for freeze_support."""
import multiprocessing

multiprocessing.freeze_support()

from engine.cli import main  # noqa: E402 (after freeze_support on purpose)

raise SystemExit(main())
