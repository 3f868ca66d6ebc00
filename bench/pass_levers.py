"""Each training lever switched off in turn, on the same model and the same step, side by side.

One process loads the starter model with LoRA as the engine does and times forward + backward of
the micro-batches of one optimizer step of the default workload (no optimizer, no data loading),
with every lever on and with one lever off, alternating A B C ... A B C ... so that the machine's
drift hits every variant alike. (Separate training runs, as in `race.py --only levers`, differ
by 10-15% between two identical configurations on the 2-core development machine: more than most
levers are worth.) Prints seconds per step (median of the rounds) and the ratio off / on, i.e.
what each lever buys.

    .venv/bin/python -m bench.pass_levers [--model DIR] [--data FILE] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import torch

from bench.rendering import load_tokenizer, render_file
from bench.workload import DEFAULT_DATA, write_subsets


@dataclass
class Setup:
    """What one timed step runs: the loss module and the micro-batches (packed, as the engine does)."""

    loss_module: torch.nn.Module
    batches: list
    padded_batches: list  # the same examples without packing, sorted by length, padded per pass

    @property
    def config(self):
        from engine.train.loss import causal_lm_of

        return causal_lm_of(self.loss_module.model).config


@contextmanager
def _attention(setup: Setup, implementation: str) -> Iterator[Setup]:
    config = setup.config
    before = config._attn_implementation
    config._attn_implementation = implementation
    try:
        yield setup
    finally:
        config._attn_implementation = before


def _masked_attention(setup: Setup):
    """transformers' SDPA with the block-diagonal mask of the packed row (the per-example kernel off)."""
    return _attention(setup, "sdpa")


def _eager_attention(setup: Setup):
    """transformers' plain attention (matrix products and softmax) with the block-diagonal mask."""
    return _attention(setup, "eager")


@contextmanager
def _no_packing(setup: Setup) -> Iterator[Setup]:
    """Examples sorted by length and padded to the longest of each pass, as `training.packing=false`."""
    with _attention(setup, "sdpa"):
        yield replace(setup, batches=setup.padded_batches)


@contextmanager
def _bernoulli_dropout(setup: Setup) -> Iterator[Setup]:
    """PEFT's own nn.Dropout in every LoRA layer (WordDropout off)."""
    from engine.train.dropout import WordDropout

    swapped = []
    for module in setup.loss_module.model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if isinstance(dropouts, torch.nn.ModuleDict):
            for name, dropout in list(dropouts.items()):
                if isinstance(dropout, WordDropout):
                    dropouts[name] = torch.nn.Dropout(dropout.p)
                    swapped.append((dropouts, name, dropout))
    try:
        yield setup
    finally:
        for dropouts, name, dropout in swapped:
            dropouts[name] = dropout


@contextmanager
def _all_logits(setup: Setup) -> Iterator[Setup]:
    """The model's own forward: logits at every position, loss on the learned ones (label_only_logits off)."""
    from engine.train.loss import TokenLoss

    yield replace(setup, loss_module=TokenLoss(setup.loss_module.model, fast=False))


@contextmanager
def _recomputed_logits(setup: Setup) -> Iterator[Setup]:
    """The vocabulary projection recomputed in the backward pass even when its logits would fit."""
    from engine.train import loss

    before = loss.KEEP_LOGITS_BYTES
    loss.KEEP_LOGITS_BYTES = 0
    try:
        yield setup
    finally:
        loss.KEEP_LOGITS_BYTES = before


@contextmanager
def _one_thread(setup: Setup) -> Iterator[Setup]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield setup
    finally:
        torch.set_num_threads(before)


@contextmanager
def _all_on(setup: Setup) -> Iterator[Setup]:
    yield setup


VARIANTS: dict[str, Callable] = {
    "all levers on": _all_on,
    "packing off (padded, length-sorted passes)": _no_packing,
    "attention: one masked SDPA per row": _masked_attention,
    "attention: eager (masked)": _eager_attention,
    "LoRA dropout: nn.Dropout (bernoulli_)": _bernoulli_dropout,
    "logits at every position (label_only_logits off)": _all_logits,
    "logits: recomputed in backward": _recomputed_logits,
    "threads: 1 instead of one per core": _one_thread,
}


def step_batches(config, model_dir: str, data: Path, examples: int, packing: bool = True):
    """The micro-batches the engine's loop builds for its first optimizer step."""
    from engine.train.batching import auto_micro_batch, make_micro_batches, step_examples

    rendered, _ = render_file(data, load_tokenizer(model_dir), config.data.max_length)
    items = [SimpleNamespace(**row) for row in rendered[:examples]]
    t = config.training
    _, indices = step_examples(len(items), t.batch_size, t.seed, 0)
    micro = auto_micro_batch(t.micro_batch_size, config.data.max_length, "cpu")
    return make_micro_batches(items, indices, packing=packing, max_length=config.data.max_length,
                              micro_batch_size=micro, pad_id=0)


def time_step(setup: Setup) -> float:
    start = time.perf_counter()
    for batch in setup.batches:
        total, _ = setup.loss_module(batch)
        total.backward()
    seconds = time.perf_counter() - start
    setup.loss_module.model.zero_grad(set_to_none=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the starter model)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/tunesmith-pass-levers")
    args = parser.parse_args(argv)

    from engine.config import RunConfig
    from engine.models import resolve_model
    from engine.train import hardware
    from engine.train.loss import TokenLoss
    from engine.train.methods import load_model

    config = RunConfig()
    model_dir = str(args.model or resolve_model(config.model.name))
    threads = hardware.set_threads(0)
    train_path, _ = write_subsets(Path(args.data), 8, Path(args.workdir))
    batches = step_batches(config, model_dir, train_path, 8)
    padded = step_batches(config, model_dir, train_path, 8, packing=False)
    torch.manual_seed(0)
    model = load_model(config, Path(model_dir), torch.device("cpu"), torch.float32).model.train()
    setup = Setup(TokenLoss(model), batches, padded)
    tokens = sum(b.tokens for b in batches)
    print(f"{len(batches)} packed passes, {tokens} tokens, {threads} threads; warming up")
    time_step(setup)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_number in range(args.rounds):
        for name, switch in VARIANTS.items():
            with switch(setup) as variant:
                seconds[name].append(time_step(variant))
        print(f"round {round_number + 1}: " + ", ".join(f"{s[-1]:.2f}" for s in seconds.values()))
    base = statistics.median(seconds["all levers on"])
    print(f"\n| variant | s per step (median of {args.rounds}) | tokens/s | lever buys (off / on) |")
    print("| --- | --- | --- | --- |")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {tokens / median:.0f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
