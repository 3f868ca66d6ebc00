"""Check estimate_memory against reality: `python -m engine.train.memcheck MODEL_DIR [options]`.

Trains a few steps on synthetic examples that fill max_length exactly (so every forward pass holds
batch x max_length tokens, the case the estimate describes) and prints the predicted and the
measured peak: resident memory on the CPU, allocated memory on CUDA. One JSON line per run.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass


@dataclass
class _Row:
    input_ids: list
    labels: list


def synthetic_data(vocab: int, count: int, length: int, seed: int = 0):
    """`count` examples of exactly `length` tokens, every token learned."""
    import random
    from types import SimpleNamespace

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        rows.append(_Row(ids, list(ids)))
    return SimpleNamespace(train=rows, val=[], val_examples=[], warnings=[])


def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    /proc's VmHWM starts afresh at exec; ru_maxrss does not (a child forked from a big parent
    inherits the parent's peak), so VmHWM is preferred where it exists.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="Run folder to write (removed first).")
    args = parser.parse_args(argv)

    import shutil

    import torch
    from transformers import AutoConfig

    from engine import config as cfg
    from engine.events import TrainMetric
    from engine.train import run_training
    from engine.train.hardware import pick_device
    from engine.train.memory import estimate_memory

    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = args.model_dir, "synthetic.jsonl", args.out
    config.method.name, config.data.max_length = args.method, args.max_length
    config.training.plan, config.training.keep_general = "custom", "off"  # exactly the pass sizes asked for
    config.training.batch_size, config.training.max_steps = args.batch_size, args.steps
    config.training.precision, config.training.gradient_checkpointing = args.precision, "off"
    config.training.eval_every = config.training.save_every = 10**6
    for pair in args.set:
        key, _, value = pair.partition("=")
        cfg.set_value(config, key, value)
    shutil.rmtree(args.out, ignore_errors=True)
    device = pick_device()
    predicted = estimate_memory(config, args.model_dir, device)
    vocab = AutoConfig.from_pretrained(args.model_dir).vocab_size
    speeds = []
    began = time.monotonic()
    result = run_training(config, lambda e: speeds.append(e.tokens_per_s) if isinstance(e, TrainMetric) else None,
                          data=synthetic_data(vocab, args.batch_size * args.steps, args.max_length))
    if device.type == "cuda":
        measured = torch.cuda.max_memory_allocated(device)
    else:
        measured = peak_rss_bytes()
    print(json.dumps({"method": args.method, "max_length": args.max_length, "batch_size": args.batch_size,
                      "device": str(device), "precision": args.precision, "set": args.set,
                      "predicted_mib": round(predicted / 2**20), "measured_mib": round(measured / 2**20),
                      "error_percent": round(100 * (predicted - measured) / measured, 1),
                      "tokens_per_s": [round(s) for s in speeds], "seconds": round(time.monotonic() - began, 1),
                      "result": type(result).__name__, "reason": getattr(result, "reason", "")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
