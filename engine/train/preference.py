"""Preference losses (DPO, ORPO) on our own loop: the log-probability of each answer, then a few lines of math.

Why our engine rather than TRL's DPOTrainer: the loss is small (below), and the rest is what our loop
already does and TRL's would redo differently: the seeded step order that makes resume exact,
checkpoints, packing with per-example attention, label-only logits, the events the window and the
CLI draw from. TRL would bring a second Trainer, its own data pipeline and logging to translate.

Both answers of a pair go through the same forward pass (packed or padded), so a pair is never
split across micro-batches. The log-probability of an answer is the sum over its answer tokens
(prompt tokens are masked; see engine.data.preference_build).

- DPO (Rafailov et al. 2023): loss = -log sigmoid(beta * ((pc - rc) - (pr - rr))), with pc/pr the
  policy's log-probabilities of the chosen/rejected answer and rc/rr the reference's (the base model).
  The implicit rewards are beta * (pc - rc) and beta * (pr - rr).
- ORPO (Hong et al. 2024): loss = NLL(chosen) - beta * log sigmoid(log odds(chosen) - log odds(rejected)),
  with per-token mean log-probabilities and odds(p) = p / (1 - p); no reference model. The NLL is
  the mean over the chosen answer's tokens, per pair (TRL averages over all tokens of a batch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.train.batching import (IGNORE_INDEX, MicroBatch, collate_packed, collate_padded, groups_within,
                                   pack_rows)
from engine.train.loss import CHUNK_TOKENS, labelled_states, supports_fast_path


@dataclass
class PairBatch:
    """One forward pass over whole pairs: sequence 2i is pair i's chosen answer, 2i + 1 its rejected one."""

    batch: MicroBatch
    owner: torch.Tensor  # like batch.targets: the sequence each position belongs to (-1: padding)
    pair_ids: list  # which pairs of the data set these are (keys of the reference cache)
    answer_lengths: torch.Tensor  # (2k,) answer tokens per sequence
    reference: Optional[torch.Tensor] = None  # (2k,) the reference model's log-probabilities (DPO)

    @property
    def pairs(self) -> int:
        return len(self.pair_ids)

    @property
    def tokens(self) -> int:
        return self.batch.tokens

    def to(self, device) -> "PairBatch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return PairBatch(self.batch.to(device), move(self.owner), self.pair_ids, move(self.answer_lengths),
                         move(self.reference))


def _group_pairs(pairs: Sequence, indices: list[int], token_budget: int) -> list[list[int]]:
    """Whole pairs per pass, shortest first, at most `token_budget` tokens each (0: all in one pass)."""
    size = (lambda i: len(pairs[i].chosen.input_ids) + len(pairs[i].rejected.input_ids))
    ordered = sorted(indices, key=size)
    if not token_budget:
        return [ordered] if ordered else []
    return groups_within(ordered, size, token_budget)


def collate_pairs(pairs: Sequence, group: list[int], *, packing: bool, max_length: int, pad_id: int) -> PairBatch:
    """The sequences of `group`'s pairs in one MicroBatch, with the owner of every position."""
    sequences = [side for i in group for side in (pairs[i].chosen, pairs[i].rejected)]
    lengths = torch.tensor([s.trained_tokens for s in sequences], dtype=torch.long)
    if packing:
        sizes = [len(s.input_ids) for s in sequences]
        rows = pack_rows(sizes, max(max_length, max(sizes)))
        batch = collate_packed(sequences, rows, pad_id)
        owner = torch.full(batch.targets.shape, -1, dtype=torch.long)
        for r, row in enumerate(rows):
            for item, (start, end) in zip(row, batch.segments[r]):
                owner[r, start:end] = item
    else:
        batch = collate_padded(sequences, list(range(len(sequences))), pad_id)
        owner = torch.full(batch.targets.shape, -1, dtype=torch.long)
        for r, sequence in enumerate(sequences):
            owner[r, :len(sequence.input_ids)] = r
    return PairBatch(batch, owner, list(group), lengths)


def pair_micro_batches(pairs: Sequence, indices: list[int], *, packing: bool, max_length: int,
                       rows_per_pass: int, pad_id: int) -> list[PairBatch]:
    """Split one step's pairs into passes of about `rows_per_pass` rows of `max_length` tokens (0: one pass)."""
    groups = _group_pairs(pairs, indices, rows_per_pass * max_length)
    return [collate_pairs(pairs, group, packing=packing, max_length=max_length, pad_id=pad_id) for group in groups]


def _chunk_logps(hidden: torch.Tensor, targets: torch.Tensor, head: nn.Module) -> torch.Tensor:
    logits = head(hidden).float()
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def sequence_logps(model: nn.Module, pair_batch: PairBatch, *, fast: bool = True,
                   chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
    """(2k,) summed log-probabilities of each sequence's answer tokens under `model`."""
    batch = pair_batch.batch
    keep = batch.targets != IGNORE_INDEX
    owners = pair_batch.owner[keep]
    sequences = pair_batch.answer_lengths.shape[0]
    if fast and supports_fast_path(model):
        states = labelled_states(model, batch)
        pieces = []
        for start in range(0, states.targets.numel(), chunk_tokens):
            part = slice(start, start + chunk_tokens)
            if torch.is_grad_enabled() and states.recompute:
                pieces.append(checkpoint(_chunk_logps, states.hidden[part], states.targets[part], states.head,
                                         use_reentrant=False))
            else:
                pieces.append(_chunk_logps(states.hidden[part], states.targets[part], states.head))
        token_logps = torch.cat(pieces) if pieces else states.all_hidden.new_zeros(0, dtype=torch.float32)
    else:  # logits post-processed inside the model (e.g. soft-capping): only its own forward gets them right
        extra = {} if batch.position_ids is None else {"position_ids": batch.position_ids}
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                       **extra).logits.float()
        token_logps = logits.log_softmax(-1)[keep].gather(-1, batch.targets[keep][:, None]).squeeze(-1)
    totals = torch.zeros(sequences, dtype=torch.float32, device=token_logps.device)
    return totals.index_add(0, owners.to(token_logps.device), token_logps)


@dataclass
class PairStats:
    """Sums over the pairs seen since the last reset, for the curves (rewards as the objective defines them)."""

    pairs: int = 0
    loss: float = 0.0
    correct: int = 0  # pairs whose chosen answer has the higher reward
    margin: float = 0.0  # sum of reward(chosen) - reward(rejected)
    chosen_reward: float = 0.0
    rejected_reward: float = 0.0
    preferred_length: float = 0.0  # answer tokens of whichever answer has the higher reward
    chosen_length: float = 0.0
    extra: dict = field(default_factory=dict)

    def add(self, losses, chosen_rewards, rejected_rewards, lengths) -> None:
        chosen_len, rejected_len = lengths[0::2].float(), lengths[1::2].float()
        wins = chosen_rewards > rejected_rewards
        self.pairs += int(losses.numel())
        self.loss += float(losses.sum())
        self.correct += int(wins.sum())
        self.margin += float((chosen_rewards - rejected_rewards).sum())
        self.chosen_reward += float(chosen_rewards.sum())
        self.rejected_reward += float(rejected_rewards.sum())
        self.preferred_length += float(torch.where(wins, chosen_len, rejected_len).sum())
        self.chosen_length += float(chosen_len.sum())

    def as_vector(self) -> list[float]:
        return [self.pairs, self.loss, self.correct, self.margin, self.chosen_reward, self.rejected_reward,
                self.preferred_length, self.chosen_length]

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> "PairStats":
        pairs, loss, correct, margin, chosen, rejected, preferred, chosen_length = values
        return cls(int(pairs), loss, int(correct), margin, chosen, rejected, preferred, chosen_length)

    def means(self) -> dict:
        n = max(1, self.pairs)
        return {"pairs": self.pairs, "loss": self.loss / n, "accuracy": self.correct / n,
                "reward_margin": self.margin / n, "chosen_reward": self.chosen_reward / n,
                "rejected_reward": self.rejected_reward / n, "preferred_length": self.preferred_length / n,
                "chosen_length": self.chosen_length / n}


def log1m_exp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate near 0 as well."""
    return torch.log(-torch.expm1(x.clamp(max=-1e-7)))


def pair_losses(objective: str, beta: float, logps: torch.Tensor, lengths: torch.Tensor,
                reference: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss per pair, reward of chosen, reward of rejected) from the (2k,) sequence log-probabilities."""
    chosen, rejected = logps[0::2], logps[1::2]
    if objective == "dpo":
        if reference is None:
            raise ValueError("DPO needs the reference model's log-probabilities")
        chosen_ratio = chosen - reference[0::2]
        rejected_ratio = rejected - reference[1::2]
        losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
        return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    if objective == "orpo":
        chosen_mean = chosen / lengths[0::2].clamp(min=1)
        rejected_mean = rejected / lengths[1::2].clamp(min=1)
        log_odds = (chosen_mean - rejected_mean) - (log1m_exp(chosen_mean) - log1m_exp(rejected_mean))
        losses = -chosen_mean - beta * F.logsigmoid(log_odds)
        return losses, beta * chosen_mean.detach(), beta * rejected_mean.detach()
    raise ValueError(f"unknown preference objective {objective!r}")


class PreferenceLoss(nn.Module):
    """Wraps a model; forward(pair_batch) returns (sum of pair losses, number of pairs).

    Like TokenLoss it returns a sum, so the loop divides by the pairs of the whole step and the result
    does not depend on the micro-batch split. `stats` collects rewards and accuracy for the curves.
    """

    def __init__(self, model: nn.Module, objective: str, beta: float, fast: bool = True):
        super().__init__()
        self.model = model
        self.objective, self.beta = objective, beta
        self.fast = fast
        self.can_pack = True
        self.stats = PairStats()

    @property
    def needs_reference(self) -> bool:
        return self.objective == "dpo"

    def forward(self, pair_batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        logps = sequence_logps(self.model, pair_batch, fast=self.fast)
        lengths = pair_batch.answer_lengths.to(logps.device)
        reference = pair_batch.reference.to(logps.device) if pair_batch.reference is not None else None
        losses, chosen_rewards, rejected_rewards = pair_losses(self.objective, self.beta, logps, lengths, reference)
        self.stats.add(losses.detach(), chosen_rewards, rejected_rewards, lengths)
        return losses.sum(), torch.tensor(pair_batch.pairs, device=losses.device)
