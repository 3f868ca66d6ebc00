"""The training loss, computed only where there is something to learn.

A causal LM's vocabulary projection is its most expensive single layer for small models (for the
starter model, 49k x 576 per token) and its fp32 logits the largest activation. Prompt tokens are
masked, so their logits are wasted work: the fast path runs the model body, gathers the hidden
states at labelled positions only, and projects them with the output layer in chunks. Where the
logits of a pass would be large, each chunk is recomputed in the backward pass instead of being
kept, so they never exist all at once.

Prefix and prompt tuning change the inputs of the model (virtual tokens, extra keys) inside PEFT's
own forward, so they take the plain path: the full forward, then the same loss on the real positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.families import loss_problem
from engine.train.attention import PACKED_SDPA
from engine.train.batching import IGNORE_INDEX, MicroBatch

CHUNK_TOKENS = 1024  # labelled positions projected at once; bounds the logits memory
# Below this many bytes of fp32 logits per pass they are kept for the backward pass instead of being
# recomputed: on a CPU pass of 1024 tokens (about 200 MB of logits for the starter model) recomputing
# the projection cost 0.5 s of a 10 s pass. GPU passes hold a whole step and stay chunked.
KEEP_LOGITS_BYTES = 256 * 2**20


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, head: nn.Module) -> torch.Tensor:
    logits = head(hidden).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def causal_lm_of(model: nn.Module) -> nn.Module:
    """The transformers *ForCausalLM inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_prompt_learning(model: nn.Module) -> bool:
    """True for prefix/prompt tuning, whose PEFT forward adds virtual tokens (no packing, no fast path)."""
    peft_config = getattr(model, "peft_config", None) or {}
    kinds = {str(getattr(c, "peft_type", "")).split(".")[-1].upper() for c in peft_config.values()}
    return bool(kinds - {"LORA"})


def supports_fast_path(model: nn.Module) -> bool:
    """True for causal LMs (with or without LoRA) of a family whose logits are known to be a plain projection.

    An allow-list (engine.families), not a list of known exceptions: an unknown family's forward may
    scale or cap its logits, which only its own forward gets right.
    """
    lm = causal_lm_of(model)
    config = getattr(lm, "config", None)
    if config is None or loss_problem(config) is not None or is_prompt_learning(model):
        return False
    return callable(getattr(lm, "get_decoder", None)) and lm.get_output_embeddings() is not None


def uses_packed_kernel(model: nn.Module) -> bool:
    """Whether the model's attention is the per-example kernel, which takes the batch's segments."""
    return getattr(getattr(causal_lm_of(model), "config", None), "_attn_implementation", None) == PACKED_SDPA


@dataclass
class LabelledStates:
    """The model body's output where a token is learned, and what projecting it will cost."""

    hidden: torch.Tensor  # (labelled positions, width), in batch order
    targets: torch.Tensor  # the token each of those positions must predict
    head: nn.Module  # the output layer
    all_hidden: torch.Tensor  # every position's hidden state (to keep parameters in the graph)
    recompute: bool  # True when the logits are too large to keep for the backward pass


def labelled_states(model: nn.Module, batch: MicroBatch) -> LabelledStates:
    """Run the model body (no vocabulary projection) and gather the hidden states at labelled positions."""
    lm = causal_lm_of(model)
    body, head = lm.get_decoder(), lm.get_output_embeddings()
    packed = batch.segments is not None and uses_packed_kernel(model)
    extra = {"segments": batch.segments} if packed else {}  # see engine.train.attention
    out = body(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
               position_ids=batch.position_ids, use_cache=False, **extra)
    keep = batch.targets != IGNORE_INDEX
    targets = batch.targets[keep]
    vocab = getattr(lm.config, "vocab_size", None) or head.weight.shape[0]
    return LabelledStates(hidden=out.last_hidden_state[keep], targets=targets, head=head,
                          all_hidden=out.last_hidden_state,
                          recompute=targets.numel() * vocab * 4 > KEEP_LOGITS_BYTES)


class TokenLoss(nn.Module):
    """Wraps a model; forward(batch) returns (sum of token losses, number of labelled tokens).

    Returning the sum lets the loop divide by the token count of the whole optimizer step, so the
    result does not depend on how the step was split into micro-batches or across processes.
    Being an nn.Module, it can be wrapped in DistributedDataParallel as a whole.
    """

    def __init__(self, model: nn.Module, fast: bool = True, chunk_tokens: int = CHUNK_TOKENS):
        super().__init__()
        self.model = model
        self.fast = fast and supports_fast_path(model)
        self.can_pack = not is_prompt_learning(model)  # virtual tokens would sit at the start of a packed row
        self.chunk_tokens = chunk_tokens

    def forward(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.objective == "kl":
            return self._kl_to_base(batch)
        if self.fast:
            return self._fast(batch)
        return self._plain(batch)

    def _body(self, batch: MicroBatch):
        lm = causal_lm_of(self.model)
        packed = batch.segments is not None and uses_packed_kernel(self.model)
        extra = {"segments": batch.segments} if packed else {}  # see engine.train.attention
        return lm.get_decoder()(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                position_ids=batch.position_ids, use_cache=False, **extra).last_hidden_state

    def _kl_to_base(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum over the labelled positions of KL(base || tuned) between next-token distributions.

        The base model is this model with its adapter switched off (one copy of the weights), run
        without gradients; only the tuned pass is differentiated, so the adapter alone learns.
        """
        disable = getattr(self.model, "disable_adapter", None)
        if not callable(disable) or not self.fast:
            raise ValueError("the KL-to-base term needs a LoRA model (an adapter that can be switched off)")
        head = causal_lm_of(self.model).get_output_embeddings()
        keep = batch.targets != IGNORE_INDEX
        with torch.no_grad(), disable():
            reference = self._body(batch)[keep]
        hidden = self._body(batch)[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], self.chunk_tokens):
            part = slice(start, start + self.chunk_tokens)
            with torch.no_grad():
                base_logp = F.log_softmax(head(reference[part]).float(), dim=-1)
            tuned_logp = F.log_softmax(head(hidden[part]).float(), dim=-1)
            total = total + F.kl_div(tuned_logp, base_logp, log_target=True, reduction="sum")
        return total, keep.sum()

    def _fast(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        states = labelled_states(self.model, batch)
        hidden, targets = states.hidden, states.targets
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, targets.numel(), self.chunk_tokens):
            part = slice(start, start + self.chunk_tokens)
            if torch.is_grad_enabled() and states.recompute:
                total = total + checkpoint(_chunk_loss, hidden[part], targets[part], states.head, use_reentrant=False)
            else:
                total = total + _chunk_loss(hidden[part], targets[part], states.head)
        if targets.numel() == 0:
            total = total + states.all_hidden.sum() * 0.0  # keeps every parameter in the graph (DDP)
        return total, (batch.targets != IGNORE_INDEX).sum()

    def _plain(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        extra = {} if batch.position_ids is None else {"position_ids": batch.position_ids}
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False, **extra)
        length = batch.targets.shape[1]
        logits = out.logits[:, -length:, :].float()  # prompt tuning prepends virtual-token positions
        keep = batch.targets != IGNORE_INDEX
        total = F.cross_entropy(logits[keep], batch.targets[keep], reduction="sum")
        return total, keep.sum()
