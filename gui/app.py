"""`tunesmith`: start the window.

    tunesmith                 open the window
    tunesmith --smoke-test    show the window offscreen for about two seconds and exit 0
                              (packaging checks that the bundle starts; gui/smoke.py has the longer checks)
"""
from __future__ import annotations

import argparse
import os
import sys

SMOKE_TEST_MS = 2000


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tunesmith` console script; returns the exit code."""
    parser = argparse.ArgumentParser(prog="tunesmith", description="Fine-tune a language model on this computer.")
    parser.add_argument("--smoke-test", action="store_true",
                        help="open the window offscreen for about two seconds, then exit (for packaging checks)")
    parser.add_argument("--expect-model-ready", action="store_true",
                        help="with --smoke-test: wait until the model is ready; exit 1 if it cannot be prepared")
    parser.add_argument("--first-loss", action="store_true",
                        help="with --smoke-test: then start training and wait for the first loss point")
    parser.add_argument("--screenshot", metavar="PNG", help="with --smoke-test: save the window at the end")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    long_check = args.smoke_test and (args.expect_model_ready or args.first_loss)
    if args.smoke_test:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui import style
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Tunesmith")
    app.setOrganizationName("Tunesmith")
    style.apply(app)
    if not _data_folder_usable(args.smoke_test):
        return 1
    # The plain smoke test must not download or convert anything: it only proves the window starts.
    window = MainWindow(prepare_model=not args.smoke_test or long_check, offer_menu_entry=not args.smoke_test)
    window.show()
    if long_check:
        from gui.smoke import SmokeCheck

        window.smoke_check = SmokeCheck(app, window, first_loss=args.first_loss, screenshot=args.screenshot)
    elif args.smoke_test:
        # Closing the last window ends app.exec() by itself. A separate quit timer (there was one)
        # could fire after exec() had returned, inside someone else's event loop (the test suite's),
        # and end every loop started after it at once.
        QTimer.singleShot(SMOKE_TEST_MS, window.close)
    return int(app.exec())


def _data_folder_usable(quiet: bool) -> bool:
    """The data folder can be created; else say why in a message box (a desktop start has no terminal
    to print to) and let the program end."""
    from engine import paths
    from engine.errors import TunesmithError

    try:
        paths.data_dir()
        return True
    except TunesmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not quiet:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(None, "Tunesmith cannot start", str(exc))
        return False


if __name__ == "__main__":
    raise SystemExit(main())
