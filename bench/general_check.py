"""Time the general-ability check on a model: how long one model takes to answer the benchmark.

    .venv/bin/python -m bench.general_check                  # the starter model, full and quick, bf16 if native
    .venv/bin/python -m bench.general_check --model DIR --sizes full --precision fp32

Prints, per size, the questions, the tokens actually computed (packed) against one row per choice,
the seconds, and the base accuracy per task. Run it under the CPU lock, alone: it measures one side
(the evaluation scores the tuned side, and the base side once per base model, then from the cache).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="starter", help="A model folder, or 'starter'.")
    parser.add_argument("--sizes", default="full,quick", help="Comma-separated: full, quick, live.")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from engine.evaluate.benchmark import load_benchmark
    from engine.evaluate.choice_scoring import DEFAULT_BATCH_TOKENS, shared_start
    from engine.evaluate.general_ability import accuracy, choice_questions, right_answers, score_items
    from engine.models import resolve_model
    from engine.templates import load_tokenizer
    from engine.train.batching import groups_within
    from engine.train.hardware import DTYPES, choose, set_threads

    threads = set_threads(0)
    folder = Path(resolve_model(args.model))
    precision = choose(args.precision).precision
    autocast = None if precision == "fp32" else DTYPES[precision]
    tokenizer = load_tokenizer(folder)
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    print(f"{folder.name}: loaded in {time.perf_counter() - started:.1f} s; {threads} threads, {precision}")
    benchmark = load_benchmark()
    for size in args.sizes.split(","):
        suite = benchmark.sized(size.strip())
        questions = choice_questions(suite.items, tokenizer)
        start = shared_start(questions)
        rows = groups_within(list(range(len(questions))),
                     lambda i: len(questions[i].prompt) - start + sum(map(len, questions[i].choices)),
                     DEFAULT_BATCH_TOKENS - start)
        packed = sum(len(q.prompt) - start + sum(map(len, q.choices)) for q in questions) + start * len(rows)
        plain = sum(len(q.prompt) + len(c) for q in questions for c in q.choices)
        started = time.perf_counter()
        right = right_answers(suite, score_items(model, tokenizer, suite, autocast_dtype=autocast))
        seconds = time.perf_counter() - started
        overall = accuracy(right)
        print(f"{size}: {len(suite.items)} questions, {packed:,} tokens computed ({plain:,} one row per choice), "
              f"{seconds:.1f} s ({packed / seconds:.0f} tokens/s); accuracy {100 * overall['accuracy']:.1f}% "
              f"({100 * overall['ci'][0]:.1f}-{100 * overall['ci'][1]:.1f}), chance {100 * suite.chance():.1f}%")
        for task in suite.tasks:
            block = accuracy([r for r, item in zip(right, suite.items) if item.task == task.id])
            print(f"    {task.title}: {100 * block['accuracy']:.1f}% of {block['total']} "
                  f"(chance {100 * suite.chance(task.id):.1f}%)")


if __name__ == "__main__":
    main()
