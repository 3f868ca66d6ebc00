"""`tunesmith-cli export RUN_DIR --to adapter|merged|gguf-f16|gguf-q8_0 --out PATH`."""
from __future__ import annotations

import sys

TARGET_HELP = ("adapter: the PEFT adapter with the training tokenizer (small; needs the base model). "
               "merged: the adapter folded into the base, a plain Hugging Face model folder. "
               "gguf-f16 / gguf-q8_0: one file for llama.cpp, LM Studio and Ollama (with an Ollama Modelfile); "
               "q8_0 is about half the size of f16 and nearly as good.")


def register(sub) -> None:
    from engine.export.exporter import EXPORT_TARGETS

    parser = sub.add_parser("export", help="Export a finished run as an adapter, a merged model or a GGUF file.",
                            description=TARGET_HELP)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="The run folder (under the data folder's runs/).")
    parser.add_argument("--to", required=True, choices=EXPORT_TARGETS, help="What to write (see above).")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="Destination folder; for GGUF also a file name ending in .gguf (the Modelfile "
                             "goes beside it).")
    parser.add_argument("--force", action="store_true",
                        help="Replace an earlier export at the destination: only the files that export wrote are "
                             "replaced; a folder holding other files is never written into.")
    parser.add_argument("--no-verify", action="store_true",
                        help="GGUF: skip reading the file back and comparing it with the merged model.")
    parser.add_argument("--quiet", action="store_true", help="Print only the exported path.")
    parser.set_defaults(func=run)


def run(args) -> int:
    import warnings

    from transformers.utils import logging as transformers_logging

    from engine.export import export_run

    # Our own progress lines say what is happening; the libraries' bars and deprecation notes
    # would only interleave with them.
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)

    shown = {"fraction": -1.0}

    def show(message: str, fraction: float) -> None:
        if args.quiet and not message.startswith("Note:"):
            return
        # One line per tensor would be hundreds of lines: show tensor writes in 5% steps.
        if message.startswith("Writing ") and fraction - shown["fraction"] < 0.05:
            return
        shown["fraction"] = fraction
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    path = export_run(args.run_dir, args.to, args.out, progress=show, overwrite=args.force,
                      verify=False if args.no_verify else None)
    print(path)
    return 0
