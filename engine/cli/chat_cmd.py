"""`tunesmith-cli chat RUN_DIR [--prompt TEXT] [--base]`: talk to a trained model (or its base) in the terminal.

With --prompt it prints one answer and exits; without, it is a multi-turn chat (/reset, /quit).
The answer streams as it is written. The prompt is laid out with the run's training template.
"""
from __future__ import annotations

import sys

HELP_LINE = "Type a message and press Enter. /reset starts a new conversation, /quit (or Ctrl-D) leaves."


def register(sub) -> None:
    from engine.evaluate.settings import setting_help

    parser = sub.add_parser("chat", help="Chat with a trained model (or its base model) in the terminal.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="The run folder that training created.")
    parser.add_argument("--prompt", help="Ask one question, print the answer and exit. Without it: interactive chat.")
    parser.add_argument("--base", action="store_true", help="Answer with the base model (the adapter switched off).")
    parser.add_argument("--system", help="A system message to start the conversation with.")
    for name, flag, kind in (("max_new_tokens", "--max-new-tokens", int), ("temperature", "--temperature", float),
                             ("top_p", "--top-p", float), ("repetition_penalty", "--repetition-penalty", float),
                             ("seed", "--seed", int)):
        parser.add_argument(flag, dest=name, type=kind, help=setting_help(name)["help"])
    parser.set_defaults(func=run)


def _settings(args):
    from engine.evaluate.settings import GenerationSettings

    values = {name: getattr(args, name) for name in ("max_new_tokens", "temperature", "top_p", "repetition_penalty",
                                                      "seed") if getattr(args, name) is not None}
    return GenerationSettings.from_dict(values)


def _answer(chat, messages, side, settings, out) -> str:
    """Stream one answer to `out` and return its text; Ctrl-C stops the answer, not the program."""
    pieces = []
    generation = chat.stream(messages, side, settings)
    try:
        for piece in generation:
            pieces.append(piece)
            out.write(piece)
            out.flush()
    except KeyboardInterrupt:
        out.write(" [stopped]")
    out.write("\n")
    out.flush()
    return "".join(pieces)


def run(args) -> int:
    from engine.evaluate.chat import ChatModel

    settings = _settings(args)
    side = "base" if args.base else "tuned"
    start = [{"role": "system", "content": args.system}] if args.system else []
    quiet_loading()
    chat = ChatModel(args.run_dir)
    if args.prompt is not None:
        _answer(chat, start + [{"role": "user", "content": args.prompt}], side, settings, sys.stdout)
        return 0
    return _interactive(chat, side, settings, start)


def _interactive(chat, side: str, settings, start: list) -> int:
    from engine.evaluate.runfolder import EvaluationError

    print(f"Chatting with the {side} model of {chat.run.path.name}. {HELP_LINE}")
    messages = list(start)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            return 0
        text = line.strip()
        if text in ("/quit", "/exit"):
            return 0
        if text == "/reset":
            messages = list(start)
            print("(new conversation)")
            continue
        if not text:
            continue
        messages.append({"role": "user", "content": line})
        sys.stdout.write(f"{side}> ")
        try:
            reply = _answer(chat, messages, side, settings, sys.stdout)
        except EvaluationError as exc:  # e.g. the conversation no longer fits: say so and keep chatting
            print(f"error: {exc}", file=sys.stderr)
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": reply})


def quiet_loading() -> None:
    """No per-file "Loading weights" bars in a terminal chat or eval: they bury the answer."""
    from transformers.utils import logging

    logging.disable_progress_bar()
