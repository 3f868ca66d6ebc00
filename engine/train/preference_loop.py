"""The training loop for preference pairs: same steps, checkpoints and events, pairs instead of examples.

What differs from supervised training: a step's pairs are batched whole (engine.train.preference),
the loss is averaged per pair, each step also reports rewards and accuracy (PreferenceMetric), and
validation measures the preference loss, the share of validation pairs the model gets right and
the length of the answers it prefers.

The DPO reference is the base model. LoRA and QLoRA get it from the same weights with the adapter
switched off (no second copy in memory), each pair's values computed the first time the pair is
used and kept. Full fine-tuning changes the base weights themselves, so every pair's reference
values are computed once before the first step and kept in the run folder, for resuming.
"""
from __future__ import annotations

import contextlib
import json
import math
from typing import Optional, Sequence

import torch

from engine.config import ConfigError
from engine.events import Notice, PreferenceMetric
from engine.train.batching import auto_micro_batch
from engine.train.loop import TrainingLoop
from engine.train.preference import PairBatch, PairStats, pair_losses, pair_micro_batches, sequence_logps

REFERENCE_FILE = "reference-logps.json"


class PreferenceLoop(TrainingLoop):
    """TrainingLoop for RenderedPair data and a PreferenceLoss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reference: dict[str, dict[int, tuple[float, float]]] = {"train": {}, "val": {}}
        # Adapters: the base is always one switch away. Full fine-tuning: only until the first step.
        self.lazy_reference = hasattr(self.model, "disable_adapter")
        self._reference_sealed = False
        self._current_step = self.start_step

    # ----------------------------------------------------------------------------- batching
    def _step_units(self, indices: list[int]) -> int:
        return len(indices)

    def _pass_rows(self, batch: PairBatch) -> int:
        # pair_micro_batches fills a pass with whole pairs up to rows_per_pass * max_length tokens.
        return math.ceil(batch.tokens / self.config.data.max_length)

    def _split_of(self, examples: Sequence) -> str:
        return "train" if examples is self.train else "val"

    def _micro_batches(self, examples: Sequence, indices: list[int], rows_per_pass: Optional[int] = None):
        t = self.config.training
        max_length = self.config.data.max_length
        if rows_per_pass is None:
            rows_per_pass = auto_micro_batch(t.micro_batch_size, max_length, self.hw.device.type)
        batches = pair_micro_batches(examples, indices, packing=t.packing, max_length=max_length,
                                     rows_per_pass=rows_per_pass, pad_id=self.pad_id)
        if self.loss_module.needs_reference:
            split = self._split_of(examples)
            for batch in batches:
                self._attach_reference(split, batch)
        return batches

    # ----------------------------------------------------------------------------- the reference
    @contextlib.contextmanager
    def _as_reference(self):
        """The model as the reference policy: evaluation mode, adapter off (LoRA/QLoRA)."""
        was_training = self.model.training
        self.model.eval()
        off = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
        try:
            with torch.no_grad(), off, self._autocast():
                yield
        finally:
            self.model.train(was_training)

    def _attach_reference(self, split: str, batch: PairBatch) -> None:
        known = self.reference[split]
        missing = [i for i in batch.pair_ids if i not in known]
        if missing:
            if self._reference_sealed:
                raise RuntimeError("reference log-probabilities missing for full fine-tuning")
            with self._as_reference():
                logps = sequence_logps(self.model, batch.to(self.hw.device), fast=self.loss_module.fast).tolist()
            for k, i in enumerate(batch.pair_ids):
                known.setdefault(i, (logps[2 * k], logps[2 * k + 1]))
        batch.reference = torch.tensor([value for i in batch.pair_ids for value in known[i]], dtype=torch.float32)

    def _precompute_reference(self) -> None:
        """Full fine-tuning: every pair's reference values, before any weight changes (or from the run folder)."""
        path = self.folder.path / REFERENCE_FILE
        sizes = {"train": len(self.train), "val": len(self.val)}
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if {split: len(values) for split, values in saved.items()} == sizes:
                self.reference = {split: {i: tuple(v) for i, v in enumerate(values)} for split, values in saved.items()}
                self._reference_sealed = True
                return
        if self.start_step:
            raise ConfigError(f"{path} is missing or does not match the data, and the weights have changed since "
                              "the base model: start the run again instead of resuming it.")
        if self.dist.main:
            self.emit(Notice(message=f"Measuring the base model on all {len(self.train) + len(self.val)} pairs once "
                                     "(the DPO reference for full fine-tuning)..."))
        for split, examples in (("train", self.train), ("val", self.val)):
            self._micro_batches(examples, list(range(len(examples))))  # fills self.reference[split]
        self._reference_sealed = True
        if self.dist.main:
            values = {split: [list(self.reference[split][i]) for i in range(sizes[split])] for split in sizes}
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(values), encoding="utf-8")
            temporary.replace(path)

    # ----------------------------------------------------------------------------- metrics
    def _emit_stats(self, step: int, split: str, stats: PairStats) -> PairStats:
        if self.dist.active:
            stats = PairStats.from_vector([self.dist.sum(value, self.hw.device) for value in stats.as_vector()])
        if self.dist.main and stats.pairs:
            means = stats.means()
            self.emit(PreferenceMetric(step=step, split=split, pairs=means["pairs"], loss=means["loss"],
                                       accuracy=means["accuracy"], reward_margin=means["reward_margin"],
                                       chosen_reward=means["chosen_reward"], rejected_reward=means["rejected_reward"],
                                       preferred_length=means["preferred_length"],
                                       chosen_length=means["chosen_length"]))
        return stats

    def _train_step(self, step: int, runner: torch.nn.Module) -> tuple[float, float, int]:
        self.loss_module.stats = PairStats()
        result = super()._train_step(step, runner)
        self._emit_stats(step + 1, "train", self.loss_module.stats)
        return result

    @torch.no_grad()
    def validation_loss(self, runner: torch.nn.Module) -> Optional[float]:
        """The mean preference loss on the validation pairs; emits their accuracy, margin and lengths."""
        if not self.val:
            return None
        self.model.eval()
        stats = PairStats()
        loss = self.loss_module
        indices = self.dist.shard(list(range(len(self.val))))
        for batch in self._micro_batches(self.val, indices, self.rows_per_pass):  # smaller after running out of memory
            batch = batch.to(self.hw.device)
            with self._autocast():
                logps = sequence_logps(self.model, batch, fast=loss.fast)
            losses, chosen, rejected = pair_losses(loss.objective, loss.beta, logps, batch.answer_lengths,
                                                   batch.reference)
            stats.add(losses, chosen, rejected, batch.answer_lengths)
        step = self._current_step
        total = self._emit_stats(step, "val", stats)
        return total.loss / max(1, total.pairs)

    # ----------------------------------------------------------------------------- the loop
    def _evaluate(self, step: int, runner) -> bool:
        self._current_step = step
        return super()._evaluate(step, runner)

    def run(self, runner: torch.nn.Module):
        self._current_step = self.start_step
        if self.loss_module.needs_reference and not self.lazy_reference:
            self._precompute_reference()
        return super().run(runner)
