"""Chat speed per weight format, side by side in one process: first-token time and decode tokens/s.

    .venv/bin/python -m bench.chat_speed RUN_DIR [--formats fp32,fp16,bf16] [--rounds 3] [--tokens 64]

Each format's ChatModel is loaded once; then every round streams one answer per format and side
(tuned, then base), alternating, so a noisy machine slows every format alike. The prompt is
bench/probes.py's chat prompt (the race's), answered greedily up to `--tokens` tokens. Prints the
medians and each answer's length (a format whose answer ends early decodes fewer tokens).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import CHAT_PROMPT  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--formats", default="fp32,fp16,bf16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)

    from engine.evaluate import chat_weights
    from engine.evaluate.chat import ChatModel
    from engine.evaluate.settings import GenerationSettings

    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.tokens)
    models, load_s = {}, {}
    for fmt in args.formats.split(","):
        started = time.perf_counter()
        models[fmt] = ChatModel(args.run_dir, device="cpu", weights=fmt)
        load_s[fmt] = time.perf_counter() - started
    real = {fmt: chat.loaded.weight_format for fmt, chat in models.items()}
    print(f"formats this CPU runs: {', '.join(chat_weights.available_formats()) or 'fp32 only'}; loaded {real}")
    rates: dict = {(f, s): [] for f in models for s in ("tuned", "base")}
    firsts: dict = {(f, s): [] for f in models for s in ("tuned", "base")}
    tokens: dict = {}
    for number in range(args.rounds):
        for fmt, chat in models.items():
            for side in ("tuned", "base"):
                generation = chat.stream(CHAT_PROMPT, side, settings)
                for _ in generation:
                    pass
                tokens[(fmt, side)] = generation.tokens
                decode = generation.seconds - (generation.first_token_s or 0.0)
                rates[(fmt, side)].append((generation.tokens - 1) / decode if decode > 0 else 0.0)
                firsts[(fmt, side)].append(generation.first_token_s or 0.0)
        print(f"round {number + 1}: " + ", ".join(f"{f}/{s} {rates[(f, s)][-1]:.1f}" for f, s in rates), flush=True)
    print(f"\nmedian of {args.rounds} rounds (at most {args.tokens} tokens):")
    for (fmt, side), values in rates.items():
        print(f"  {fmt:5s} {side:5s}  decode {statistics.median(values):5.1f} tok/s   first token "
              f"{statistics.median(firsts[(fmt, side)]):.3f} s   {tokens[(fmt, side)]} tokens   (load {load_s[fmt]:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
