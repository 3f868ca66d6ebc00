"""Do chat's 16/8-bit weights change what a tuned model answers? Greedy answers on a run's held-out examples.

    .venv/bin/python -m bench.chat_fidelity RUN_DIR [--formats fp16,bf16] [--first 0 --examples 30]
                                            [--max-new-tokens 64] [--side tuned] [--json OUT]

Every format answers the same held-out prompts greedily (temperature 0, the chat's default
repetition penalty) and is compared with fp32 token by token: answers identical, tokens agreeing
before the first difference, and for each differing answer where it turned and what fp32 had
there. Decode speed of each format is printed too, but time it properly with bench/race.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def first_difference(a: list[int], b: list[int]) -> int:
    """How many leading tokens two answers share (the length of both when one is the other)."""
    for n, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return n
    return len(a) if len(a) == len(b) else min(len(a), len(b))


def agreement(reference: list[list[int]], other: list[list[int]]) -> dict:
    """Identical answers, and the share of the reference's tokens produced the same before the first difference."""
    same = sum(a == b for a, b in zip(reference, other))
    shared = sum(first_difference(a, b) for a, b in zip(reference, other))
    total = sum(len(a) for a in reference)
    return {"identical": same, "answers": len(reference), "token_agreement": shared / max(1, total)}


def answer_all(chat, examples, side: str, settings) -> tuple[list[list[int]], list[str], float]:
    ids, texts, decode_s, tokens = [], [], 0.0, 0
    for example in examples:
        generation = chat.stream(example.messages, side, settings)
        texts.append("".join(generation))
        ids.append(list(generation.token_ids))
        if generation.first_token_s is not None and generation.tokens > 1:
            decode_s += generation.seconds - generation.first_token_s
            tokens += generation.tokens - 1
    return ids, texts, tokens / decode_s if decode_s else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--formats", default="fp16,bf16")
    parser.add_argument("--first", type=int, default=0, help="index of the first held-out example")
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--side", default="tuned", choices=("tuned", "base"))
    parser.add_argument("--json", help="write every answer and the summary here")
    args = parser.parse_args(argv)

    from engine.evaluate.chat import ChatModel
    from engine.evaluate.heldout import held_out_examples
    from engine.evaluate.settings import GenerationSettings

    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    results: dict = {"run": args.run_dir, "side": args.side, "settings": settings.to_dict(), "formats": {}}
    reference = None
    examples = None
    for fmt in ["fp32"] + [f for f in args.formats.split(",") if f and f != "fp32"]:
        chat = ChatModel(args.run_dir, device="cpu", weights=fmt)
        if examples is None:
            examples = held_out_examples(chat.run)[args.first:args.first + args.examples]
        started = time.perf_counter()
        ids, texts, rate = answer_all(chat, examples, args.side, settings)
        entry = {"seconds": time.perf_counter() - started, "decode_tokens_per_s": rate, "answers": texts, "ids": ids}
        if reference is None:
            reference = (ids, texts)
        else:
            entry.update(agreement(reference[0], ids))
            entry["differences"] = [
                {"example": args.first + n, "prompt": examples[n].prompt_text, "at_token": first_difference(a, b),
                 "fp32": reference[1][n], fmt: texts[n]}
                for n, (a, b) in enumerate(zip(reference[0], ids)) if a != b]
        results["formats"][fmt] = entry
        summary = "" if fmt == "fp32" else (f"identical {entry['identical']}/{entry['answers']}, token agreement "
                                             f"{entry['token_agreement']:.1%}")
        print(f"{fmt:5s} {len(examples)} answers in {entry['seconds']:.1f} s, decode {rate:.1f} tok/s  {summary}",
              flush=True)
        for diff in entry.get("differences", []):
            print(f"   example {diff['example']} turns at token {diff['at_token']}:\n     fp32: {diff['fp32']!r}\n"
                  f"     {fmt}: {diff[fmt]!r}")
        del chat
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
