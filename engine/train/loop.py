"""The training loop itself: steps, validation, early stopping, checkpoints, stop requests, NaN guard.

A lean loop (no HF Trainer): every optimizer step is defined by the seeded example order, so a
resumed run replays exactly the steps an uninterrupted one would take.
"""
from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from engine.events import CheckpointSaved, EvalMetric, Event, FirstLoss, Notice, Progress, TrainMetric
from engine.failures import memory_kind
from engine.train import checkpoint as ckpt
from engine.train.batching import (IGNORE_INDEX, auto_micro_batch, make_micro_batches, step_examples,
                                   steps_per_epoch)
from engine.train.distributed import DistContext
from engine.train.hardware import Hardware
from engine.train.optimizers import make_optimizer
from engine.train.rundir import RunFolder


class NonFiniteLoss(RuntimeError):
    """The loss or the gradients became NaN/inf at `step`."""

    def __init__(self, step: int, value: float):
        super().__init__(f"loss became {value} at step {step}")
        self.step, self.value = step, value


def lr_factor(scheduler: str, warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine/linear decay to zero or a constant rate."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def autocast_for(hw: Hardware) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context the forward passes run under (none in fp32)."""
    dtype = hw.autocast_dtype
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(hw.device.type, dtype=dtype)


def trained_tokens(example) -> int:
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)


@dataclass
class LoopState:
    """What a checkpoint's state.json holds besides the step."""

    best_step: Optional[int] = None
    best_val_loss: Optional[float] = None
    evals_since_best: int = 0
    last_good_step: Optional[int] = None

    def to_dict(self) -> dict:
        return {"best_step": self.best_step, "best_val_loss": self.best_val_loss,
                "evals_since_best": self.evals_since_best}


@dataclass
class LoopResult:
    step: int
    reason: str  # completed | stopped | early_stopped
    state: LoopState


class TrainingLoop:
    """Runs optimizer steps `start..total` on one process (or one rank) and emits events."""

    def __init__(self, *, config, model, loss_module, train: Sequence, val: Sequence, hardware: Hardware,
                 dist: DistContext, folder: RunFolder, emit: Callable[[Event], None], pad_id: int,
                 total_steps: int, stop=None, general=None, keep_general=None, clock=None):
        t = config.training
        self.config, self.model, self.loss_module = config, model, loss_module
        self.train, self.val, self.hw, self.dist = train, val, hardware, dist
        self.folder, self.emit, self.pad_id, self.stop = folder, emit, pad_id, stop
        self.general = general if dist.main else None  # engine.train.general_curve.GeneralCurve, or None
        self._warned_forgetting = False
        self.total_steps = total_steps
        self.keep_general = keep_general  # engine.train.keep_general.KeepGeneral or None
        self.general_loss: Optional[float] = None  # the last step's keep-general term (per token)
        self.clock = clock  # engine.train.calibrate.RunTimer: the ETA from the run's estimate, or None
        self.step_times: list[float] = []  # optimizer steps alone (no validation, saving): the rates a run teaches
        self.step_seconds = 0.0  # their running sum, for each step's ETA
        self.eval_every = t.eval_every or max(1, math.ceil(total_steps / 10))  # about ten per run
        self.save_every = t.save_every or self.eval_every
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(t.optimizer, self.params, hardware.device, lr=t.lr, weight_decay=t.weight_decay,
                                        notice=lambda message: emit(Notice(message=message, level="warning")))
        warmup = int(round(t.warmup_ratio * total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(t.scheduler, warmup, total_steps))
        self.scaler = torch.amp.GradScaler(hardware.device.type) if hardware.precision == "fp16" else None
        self.state = LoopState()
        self.start_step = 0
        self.rows_per_pass: Optional[int] = None  # None: auto_micro_batch; set smaller after running out of memory
        self._rows_in_pass = 0
        self._memory_retried = False
        self._first_loss_sent = False

    # ----------------------------------------------------------------------------- set-up
    def resume(self, path) -> None:
        saved = ckpt.load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.start_step = int(saved["step"])
        self.state.best_step, self.state.best_val_loss = saved.get("best_step"), saved.get("best_val_loss")
        self.state.evals_since_best = int(saved.get("evals_since_best", 0))
        self.state.last_good_step = self.start_step

    def _autocast(self):
        return autocast_for(self.hw)()

    def _micro_batches(self, examples: Sequence, indices: list[int], rows_per_pass: Optional[int] = None):
        t = self.config.training
        packing = t.packing and self.loss_module.can_pack
        max_length = self.config.data.max_length
        if rows_per_pass is None:
            rows_per_pass = auto_micro_batch(t.micro_batch_size, max_length, self.hw.device.type)
        return make_micro_batches(examples, indices, packing=packing, max_length=max_length,
                                  micro_batch_size=rows_per_pass, pad_id=self.pad_id)

    def _pass_rows(self, batch) -> int:
        """A pass's size in rows_per_pass units (halved after running out of memory)."""
        return len(batch.input_ids)

    def _step_units(self, indices: list[int]) -> int:
        """What a step's loss is averaged over: its learned tokens (preference tuning: its pairs)."""
        return sum(trained_tokens(self.train[i]) for i in indices)

    # ----------------------------------------------------------------------------- one step
    def _step(self, step: int, runner: torch.nn.Module) -> tuple[float, float, int]:
        """One optimizer step; out of memory, it is tried once more with half as many rows per pass.

        The step's result does not depend on how it is split into passes, so the curve goes on as
        before, only a little slower. Not with several processes: they would have to agree on it.
        """
        rng = torch.get_rng_state()  # the retry draws the same dropout masks
        try:
            return self._train_step(step, runner)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried; everything else goes on up
            smaller = self._smaller_passes(exc, step)
            if smaller is None:
                raise
        # Outside the except block: the traceback and the tensors it holds are gone, so memory can be freed.
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if self.hw.device.type == "cuda":
            torch.cuda.empty_cache()
        torch.set_rng_state(rng)
        return self._train_step(step, runner)

    def _smaller_passes(self, exc: BaseException, step: int) -> Optional[int]:
        kind = memory_kind(exc)
        if kind is None or self.dist.active or self._memory_retried or self._rows_in_pass <= 1:
            return None
        self._memory_retried = True
        before, self.rows_per_pass = self._rows_in_pass, max(1, self._rows_in_pass // 2)
        where = "GPU" if kind == "gpu" else "the computer's"
        self.emit(Notice(message=f"Step {step + 1} ran out of {where} memory with {before} rows per pass; trying "
                                 f"again with {self.rows_per_pass}: the same steps in smaller parts, a little "
                                 "slower.", level="warning"))
        return self.rows_per_pass

    def _general_batches(self, step: int) -> tuple[list, int]:
        """The keep-general micro-batches of `step` and their labelled tokens (all ranks together)."""
        general = self.keep_general
        if general is None:
            return [], 0
        indices = general.indices(step)
        tokens = sum(trained_tokens(general.examples[i]) for i in indices)
        batches = self._micro_batches(general.examples, self.dist.shard(indices), self.rows_per_pass)
        kl = general.objective == "kl" and self.loss_module.fast  # the KL term needs the label-only path
        for batch in batches:
            batch.objective = "kl" if kl else "ce"
        return batches, tokens

    def _train_step(self, step: int, runner: torch.nn.Module) -> tuple[float, float, int]:
        """One optimizer step; returns (mean loss, grad norm, tokens processed by all ranks)."""
        t = self.config.training
        _, indices = step_examples(len(self.train), t.batch_size, t.seed, step)
        # Normalise by the whole step's labelled tokens: identical for any micro-batch split or world size.
        step_tokens = self._step_units(indices)
        # A new run's first step goes one row per pass, so its first loss (FirstLoss) is known after a
        # short pass; the step's result is the same, only summed in smaller parts. Other steps keep their
        # usual passes, so a resumed run draws the same dropout masks as an uninterrupted one.
        first = step == self.start_step
        mine = self.dist.shard(indices)
        # A rank left without examples (the last step of an epoch, say) still runs one forward and
        # backward through DDP, on an example weighted zero: DDP's gradient all-reduce needs every rank.
        idle = not mine and self.dist.active
        rows = 1 if step == 0 else self.rows_per_pass
        batches = self._micro_batches(self.train, indices[:1] if idle else mine, rows)
        # The keep-general term is a mean over its own tokens, weighted, so it never drowns the user's loss.
        general, general_tokens = self._general_batches(step)
        weight = self.keep_general.weight if general else 0.0
        parts = [(b, 0.0 if idle else self.dist.world / max(1, step_tokens)) for b in batches]
        parts += [(b, weight * self.dist.world / max(1, general_tokens)) for b in general]
        self.model.train()
        loss_sum, general_sum, tokens = 0.0, 0.0, 0
        self._rows_in_pass = max((self._pass_rows(batch) for batch, _ in parts), default=0)
        for n, (batch, scale) in enumerate(parts):
            batch = batch.to(self.hw.device)
            sync = n == len(parts) - 1 or not hasattr(runner, "no_sync")
            with (contextlib.nullcontext() if sync else runner.no_sync()), self._autocast():
                total, units = runner(batch)
                if first and n == 0 and self.dist.main and not self._first_loss_sent:
                    self._first_loss_sent = True
                    self.emit(FirstLoss(step=step, loss=float(total.detach()) / max(1, int(units))))
                scaled = total * scale
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if n >= len(batches):
                general_sum += float(total.detach())
                tokens += batch.tokens
            elif not idle:
                loss_sum += float(total.detach())
                tokens += batch.tokens
        if general:
            self.general_loss = self.dist.sum(general_sum, self.hw.device) / max(1, general_tokens)
        loss = self.dist.sum(loss_sum, self.hw.device) / max(1, step_tokens)
        tokens = int(self.dist.sum(tokens, self.hw.device))
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        max_norm = t.max_grad_norm if t.max_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        if not math.isfinite(loss) or (not math.isfinite(grad_norm) and self.scaler is None):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(step + 1, loss if not math.isfinite(loss) else grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm, tokens

    @torch.no_grad()
    def validation_loss(self, runner: torch.nn.Module) -> Optional[float]:
        if not self.val:
            return None
        # Without gradients DDP adds nothing but collectives, which would wait forever on a rank whose
        # share of the validation set is one forward pass shorter: every rank runs its own module.
        runner = self.loss_module
        self.model.eval()
        loss_sum, count = 0.0, 0
        per_pass = max(1, self.config.training.micro_batch_size or self.config.training.batch_size)
        indices = self.dist.shard(list(range(len(self.val))))
        for start in range(0, len(indices), per_pass):
            for batch in self._micro_batches(self.val, indices[start:start + per_pass], self.rows_per_pass):
                with self._autocast():
                    total, n = runner(batch.to(self.hw.device))
                loss_sum += float(total)
                count += int(n)
        return self.dist.sum(loss_sum, self.hw.device) / max(1.0, self.dist.sum(count, self.hw.device))

    # ----------------------------------------------------------------------------- checkpoints
    def save(self, step: int) -> None:
        if self.dist.main:
            path = ckpt.save_checkpoint(self.folder.checkpoints, step, self.model, self.optimizer,
                                        self.scheduler, self.state.to_dict())
            ckpt.prune(self.folder.checkpoints, self.config.training.keep_checkpoints, self.state.best_step)
            self.emit(CheckpointSaved(step=step, path=str(path)))
        self.state.last_good_step = step

    def _evaluate(self, step: int, runner) -> bool:
        """Measure validation loss; returns True when early stopping says to stop."""
        val_loss = self.validation_loss(runner)
        if val_loss is None:
            return False
        s = self.state
        if s.best_val_loss is None or val_loss < s.best_val_loss:
            s.best_step, s.best_val_loss, s.evals_since_best = step, val_loss, 0
        else:
            s.evals_since_best += 1
        if self.dist.main:
            self.emit(EvalMetric(step=step, val_loss=val_loss, best_step=s.best_step, best_val_loss=s.best_val_loss))
        if self.general is not None:
            self._general_point(step)
        patience = self.config.training.early_stopping_patience
        return patience > 0 and s.evals_since_best >= patience

    def _general_point(self, step: int) -> None:
        """Score general knowledge now; say when it fell beyond noise, or fell below the best step's."""
        metric = self.general.measure(self.model, step)
        self.emit(metric)
        if metric.forgetting and not self._warned_forgetting:
            self._warned_forgetting = True
            self.emit(Notice(level="warning", message=(
                f"Step {step}: general knowledge fell to {100 * metric.accuracy:.0f}% of {metric.total} questions "
                f"from {100 * metric.base_accuracy:.0f}% before training, more than chance explains: the model is "
                "forgetting what it knew. Consider a lower learning rate, fewer steps, or mixing in general data.")))
        best = self.state.best_step
        at_best = self.general.by_step.get(best) if best is not None and best != step else None
        if at_best is not None and metric.accuracy < at_best:
            self.emit(Notice(message=(
                f"Step {step} forgot more than step {best}, the best step by validation loss: general knowledge "
                f"{100 * metric.accuracy:.0f}% against {100 * at_best:.0f}%. The result keeps step {best}.")))

    # ----------------------------------------------------------------------------- the loop
    def run(self, runner: torch.nn.Module) -> LoopResult:
        began = time.monotonic()
        if self.general is not None:
            point = self.general.base(self.model, fresh=self.start_step == 0)
            if point is not None:
                self.emit(point)
        done_here = 0
        per_epoch = steps_per_epoch(len(self.train), self.config.training.batch_size)
        step = self.start_step
        while step < self.total_steps:
            tick = time.monotonic()
            loss, grad_norm, tokens = self._step(step, runner)
            step += 1
            done_here += 1
            now = time.monotonic()
            self.step_seconds += now - tick
            self.step_times.append(now - tick)
            if self.dist.main:
                self.emit(TrainMetric(step=step, loss=loss, lr=self.scheduler.get_last_lr()[0], grad_norm=grad_norm,
                                      tokens_per_s=tokens / max(1e-9, now - tick)))
                if self.clock is not None:
                    validations_left = self.total_steps // self.eval_every - step // self.eval_every
                    validations_left += int(self.total_steps % self.eval_every != 0)
                    eta = self.clock.eta(step, self.step_seconds, done_here, validations_left)
                else:
                    eta = (now - began) / done_here * (self.total_steps - step)
                self.emit(Progress(step=step, total_steps=self.total_steps, epoch=step / per_epoch,
                                   elapsed_s=now - began, eta_s=eta))
            last = step == self.total_steps
            early = False
            improved_before = self.state.best_step
            if step % self.eval_every == 0 or last:
                early = self._evaluate(step, runner)
            stop_asked = self.dist.any(self.stop is not None and self.stop.is_set(), self.hw.device)
            improved = self.state.best_step == step and improved_before != step
            if improved or step % self.save_every == 0 or last or early or stop_asked:
                self.save(step)
            if early:
                return LoopResult(step, "early_stopped", self.state)
            if stop_asked and not last:
                return LoopResult(step, "stopped", self.state)
        return LoopResult(step, "completed", self.state)
