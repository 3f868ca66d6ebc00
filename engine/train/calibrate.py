"""Measure this machine's training speed for one model and method, once, and remember it.

`calibrate(config, model_dir)` loads the model as training would (method, precision, attention),
times a few short passes on made-up token rows of two sizes, a forward-only pass and a batched
decoding step, and fits the rates of engine.train.timing.Throughput. About 15-30 s on a 2-core CPU
for the starter model, a few seconds on a GPU. The result is cached in the data folder
(throughput.json) and moved towards the rates each finished run actually achieved (`learn_from_run`).
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from engine import paths
from engine.train import timing

# The optimizer step where it is not timed (inside a real run, whose weights must not move): AdamW reads
# and writes about 16 bytes per trainable parameter; measured 0.02 s for the starter's LoRA (4.9M).
OPTIMIZER_S_PER_PARAM = 4e-9
LEARN_MIN_STEPS = 10  # a run teaches the stored rates only after this many steps


def process_age() -> float:
    """Seconds since this process started (its imports count towards a run's start-up)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


def cache_key(config, model_dir, device_type: str) -> str:
    return timing.throughput_key(config, str(model_dir), device_type)


def _rows(vocab: int, count: int, length: int, learned: int, seed: int):
    import random

    from engine.templates import IGNORE_INDEX, Rendered

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        labels = [IGNORE_INDEX] * (length - learned) + ids[length - learned:]
        rows.append(Rendered(input_ids=ids, labels=labels, truncated=False, full_length=length))
    return rows


def calibrate(config, model_dir: Path, *, save: bool = True) -> timing.Throughput:
    """Load the model as training would, time short passes, and return (and cache) the fitted rates."""
    import torch

    from engine.train import hardware
    from engine.train.loss import TokenLoss
    from engine.train.methods import load_model

    began = time.monotonic()
    startup_before = process_age()
    hw = hardware.choose(config.training.precision)
    if hw.device.type == "cpu":
        hardware.set_threads(config.training.threads)
    loaded = load_model(config, Path(model_dir), hw.device,
                        torch.bfloat16 if hw.precision == "bf16" else torch.float32)
    loss = TokenLoss(loaded.model, fast=config.training.label_only_logits)
    startup = startup_before + (time.monotonic() - began)
    rate = measure(loaded.model, loss, hw, startup_s=startup, optimizer_step=True)
    if save:
        timing.save_throughput(paths.data_dir(), cache_key(config, model_dir, hw.device.type), rate)
    return rate


def measure(model, loss, hw, *, startup_s: float, optimizer_step: bool = False) -> timing.Throughput:
    """Time training and forward passes of `model` (wrapped in TokenLoss `loss`) on made-up rows.

    Leaves the model as it found it: gradients cleared, random number generators restored (dropout
    draws from them), weights untouched unless `optimizer_step` (a throw-away calibration model).
    """
    import torch

    from engine.train.batching import make_micro_batches

    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    shape = model_shape_of(model)
    params = [p for p in model.parameters() if p.requires_grad]

    def autocast():
        if hw.autocast_dtype is None:
            return _null()
        return torch.autocast(hw.device.type, dtype=hw.autocast_dtype)

    def batch_of(rows):
        return make_micro_batches(rows, list(range(len(rows))), packing=loss.can_pack, max_length=2048,
                                  micro_batch_size=0, pad_id=0)[0].to(hw.device)

    def timed(rows, train: bool, repeat: int) -> float:
        batch = batch_of(rows)
        best = float("inf")
        for _ in range(repeat):
            _sync(hw.device)
            tick = time.perf_counter()
            if train:
                model.train()
                with autocast():
                    total, count = loss(batch)
                (total / max(1, int(count))).backward()
            else:
                model.eval()
                with torch.no_grad(), autocast():
                    loss(batch)
            _sync(hw.device)
            best = min(best, time.perf_counter() - tick)
        return best

    small = _rows(shape.vocab, 2, 48, 16, seed=1)
    large = _rows(shape.vocab, 4, 160, 56, seed=2)
    timed(small, True, 1)  # warm-up: kernels and primitives are set up on first use
    flops_small = timing.forward_flops(shape, [48] * 2, [16] * 2)
    flops_large = timing.forward_flops(shape, [160] * 4, [56] * 4)
    # the fastest of two of each: on a busy machine one pass can take twice as long as the next
    t_small, t_large = timed(small, True, 2), timed(large, True, 2)
    trainable = sum(p.numel() for p in params)
    step_s = trainable * OPTIMIZER_S_PER_PARAM
    if optimizer_step:
        optimizer = torch.optim.AdamW(params, lr=1e-12)
        times = []
        for _ in range(2):  # the first step also allocates AdamW's state: the second is the steady cost
            _sync(hw.device)
            tick = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            _sync(hw.device)
            times.append(time.perf_counter() - tick)
        step_s = min(times)
    for p in params:
        p.grad = None
    train_rate, pass_s = _fit(flops_small, t_small, flops_large, t_large)
    eval_large = timed(large, False, 1)
    eval_rate = max(1e-18, (eval_large - pass_s) / flops_large)
    decode_step_s = _decode_step_seconds(model, hw.device, shape.vocab)
    model.train(was_training)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    return timing.Throughput(train_s_per_flop=train_rate, eval_s_per_flop=eval_rate, pass_s=pass_s, step_s=step_s,
                             startup_s=startup_s, decode_step_s=decode_step_s, source="calibrated")


def _fit(flops_a: float, seconds_a: float, flops_b: float, seconds_b: float) -> tuple[float, float]:
    """(seconds per operation, fixed seconds per pass) through two measured passes."""
    slope = (seconds_b - seconds_a) / max(1.0, flops_b - flops_a)
    if slope <= 0:  # noise: fall back to a line through the origin
        return seconds_b / flops_b, 0.0
    intercept = seconds_a - slope * flops_a
    if intercept < 0:
        return seconds_b / flops_b, 0.0
    return slope, intercept


def _decode_step_seconds(model, device, vocab: int, batch: int = timing.ANSWER_BATCH, new_tokens: int = 6) -> float:
    import torch

    ids = torch.randint(3, vocab, (batch, 24), device=device)
    model.eval()
    off = getattr(model, "disable_adapter", None)
    import contextlib

    with torch.inference_mode(), (off() if callable(off) else contextlib.nullcontext()):
        model.generate(input_ids=ids, max_new_tokens=2, min_new_tokens=2, do_sample=False, pad_token_id=0)
        _sync(device)
        tick = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=0)
        _sync(device)
    return (time.perf_counter() - tick) / new_tokens


def model_shape_of(model) -> timing.ModelShape:
    from engine.train.loss import causal_lm_of
    from engine.train.methods import trainable_counts

    lm = causal_lm_of(model)
    _, total = trainable_counts(model)
    return timing.ModelShape.from_config(lm.config.to_dict(), params=total - _adapter_params(model))


def _adapter_params(model) -> int:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    everything = sum(p.numel() for p in model.parameters())
    return trainable if trainable < everything else 0


def stored_rate(config, model_dir, device_type: str) -> Optional[timing.Throughput]:
    return timing.load_throughput(paths.data_dir(), cache_key(config, model_dir, device_type))


def learn_from_run(key: str, predicted: timing.Estimate, rate: timing.Throughput, *, step_times: Sequence[float],
                   startup_s: Optional[float]) -> timing.Throughput:
    """Rates corrected by what a finished run measured, stored for the next estimate.

    The correction compares a typical step (the median, without the first) with the predicted one, so a
    few steps slowed by something else on the machine (another program, a swap) teach nothing, and it
    moves the rates half-way there (in ratio), so one unusual run cannot throw the next estimate off by
    its whole error, while runs that keep measuring the same thing converge on it. A run stopped within
    its first few steps says more about that moment than about the machine's speed: it teaches nothing.
    """
    if len(step_times) < LEARN_MIN_STEPS or predicted.step_s <= 0:
        return rate
    typical = statistics.median(step_times[1:])  # the first step differs (engine.train.timing.estimate)
    ratio = max(0.2, min(5.0, typical / predicted.step_s))
    scale = math.sqrt(ratio)
    learned = timing.Throughput(train_s_per_flop=rate.train_s_per_flop * scale,
                                eval_s_per_flop=rate.eval_s_per_flop * scale, pass_s=rate.pass_s * scale,
                                step_s=rate.step_s * scale, startup_s=startup_s if startup_s else rate.startup_s,
                                decode_step_s=rate.decode_step_s, source="measured in a run")
    timing.save_throughput(paths.data_dir(), key, learned)
    return learned


class RunTimer:
    """A run's estimate at work: the ETA of each Progress event, and the rates learned at the end."""

    # A process older than this when training was asked for is a long-lived one (tests, notebooks):
    # its age says nothing about a run's start-up, so the stored start-up is kept.
    LONG_LIVED_S = 60.0

    def __init__(self, key: str, rate: timing.Throughput, estimate: timing.Estimate, total_steps: int,
                 validations: int, startup_s: Optional[float]):
        self.key, self.rate, self.estimate = key, rate, estimate
        self.clock = timing.RunClock(estimate, total_steps, validations)
        self.startup_s = startup_s

    def eta(self, step: int, steps_elapsed_s: float, steps_done: int, validations_left: int) -> float:
        return self.clock.eta(step, steps_elapsed_s, steps_done, validations_left)

    def learn(self, step_times: Sequence[float]) -> None:
        try:
            learn_from_run(self.key, self.estimate, self.rate, step_times=step_times, startup_s=self.startup_s)
        except OSError:
            pass  # a read-only data folder costs the next estimate its accuracy, nothing else


def run_startup(called_at: float) -> Optional[float]:
    """Seconds from this process's start to now, or None when the process is long-lived (see RunTimer)."""
    age = process_age()
    return age if age - (time.monotonic() - called_at) < RunTimer.LONG_LIVED_S else None


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _sync(device) -> None:
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)
