"""Loading a run's models once for chat and evaluation.

Adapter runs (LoRA, QLoRA, prefix, prompt): ONE copy of the base weights with the adapter on top;
"base" answers come from the same object with the adapter switched off (`disable_adapter()`), so
the two sides cost one model's memory. Full fine-tuning replaced every weight, so there "base"
is loaded separately from the base model folder (twice the memory).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from engine import remote_code
from engine.evaluate.runfolder import EvaluationError, RunFolder

SIDES = ("base", "tuned")


def pick_device(device: Optional[str] = None):
    """The requested device, else the GPU when there is one, else the CPU."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype_for(device):
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # fp32 on the CPU: bf16 matmuls are slower there on most processors, and these models are small.
    return torch.float32


def load_run_tokenizer(run: RunFolder):
    """The tokenizer with the chat template used in training (RUN/tokenizer), so chat cannot drift from it."""
    from transformers import AutoTokenizer

    if run.tokenizer_path == run.path / "tokenizer":
        tokenizer = AutoTokenizer.from_pretrained(str(run.tokenizer_path), **remote_code.kwargs())
    else:
        # Older or partial runs: rebuild the template the run was trained with.
        from engine.templates import load_tokenizer

        tokenizer = load_tokenizer(run.base_model_path, template=run.info.get("template") or "auto")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_causal_lm(folder, device, dtype, vocab_size: Optional[int] = None):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **remote_code.kwargs())
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{folder}: the model could not be loaded ({exc}). The folder may be incomplete; "
                              "import the model again or re-run training.") from None
    if vocab_size and model.get_input_embeddings().weight.shape[0] < vocab_size:
        # Training added tokens (e.g. a chat template's markers): the adapter expects the larger table.
        model.resize_token_embeddings(vocab_size)
    return model.to(device).eval()


@dataclass
class LoadedRun:
    """A run's models in memory: `tuned` always, `separate_base` only for full fine-tuning."""

    run: RunFolder
    tokenizer: Any
    tuned: Any
    separate_base: Optional[Any]
    device: Any
    merge_for_speed: bool = False
    _merged: bool = False
    # Chat's 16/8-bit layers (engine.evaluate.chat_weights); they carry base and tuned weights themselves.
    chat_layers: list = field(default_factory=list)
    weight_format: str = "fp32"
    adapter_folded: bool = False  # every LoRA layer became a chat layer: no adapter left to switch off

    @property
    def shares_weights(self) -> bool:
        """True when base and tuned answers come from one set of weights (adapter runs)."""
        return self.separate_base is None

    def _set_merged(self, merged: bool) -> None:
        # An unmerged LoRA adds two small matrix products to every layer, which costs about a quarter
        # of the CPU decode speed. So for "tuned" the update is added into the weights in place, and
        # subtracted again for "base": still one copy of the weights, switched in tens of milliseconds.
        # Only in fp32, where adding and subtracting leaves no drift worth the name.
        if self.merge_for_speed and merged != self._merged:
            (self.tuned.merge_adapter if merged else self.tuned.unmerge_adapter)()
            self._merged = merged

    def _switch(self, side: str) -> None:
        if self.chat_layers:
            for layer in self.chat_layers:
                layer.use(side)
        else:
            self._set_merged(side == "tuned")

    @contextlib.contextmanager
    def side(self, side: str) -> Iterator[Any]:
        """The model that answers for `side`: the adapter switched off for "base", on for "tuned"."""
        if side not in SIDES:
            raise ValueError(f"side must be 'base' or 'tuned', not {side!r}")
        if side == "tuned":
            self._switch("tuned")
            yield self.tuned
        elif self.separate_base is not None:
            yield self.separate_base
        else:
            self._switch("base")
            with contextlib.nullcontext() if self.adapter_folded else self.tuned.disable_adapter():
                yield self.tuned


def _can_merge(model, dtype) -> bool:
    """Plain LoRA on full-precision weights: merging in place is exact enough and reversible."""
    import torch
    from peft import PeftType

    config = model.peft_config[model.active_adapter]
    return (dtype == torch.float32 and config.peft_type == PeftType.LORA and not getattr(config, "use_dora", False)
            and not getattr(model.get_base_model(), "is_quantized", False))


def load_run(run: RunFolder, device: Optional[str] = None, weights: str = "fp32") -> LoadedRun:
    """Load the tokenizer and the model(s) of a run onto `device` (default: GPU if any, else CPU).

    QLoRA adapters are applied to the base in 16/32-bit here rather than 4-bit: the answers are
    the same up to rounding, and it works on machines without a CUDA GPU. `weights`
    'fp16' or 'bf16' stores the linear layers in that format for chat (engine.evaluate.chat_weights).
    A run trained with model.trust_remote_code loads with it again (engine.remote_code), others never do.
    """
    with remote_code.allowed(bool(run.info.get("trust_remote_code"))):
        return _load_run(run, device, weights)


def _load_run(run: RunFolder, device: Optional[str], weights: str) -> LoadedRun:
    from engine.evaluate.chat_weights import convert_for_chat

    torch_device = pick_device(device)
    dtype = _dtype_for(torch_device)
    tokenizer = load_run_tokenizer(run)
    if run.is_full:
        tuned = _load_causal_lm(run.tuned_path, torch_device, dtype)
        base = _load_causal_lm(run.base_model_path, torch_device, dtype, vocab_size=len(tokenizer))
        convert_for_chat(tuned, weights)  # one weight per model: nothing to switch
        convert_for_chat(base, weights)
        return LoadedRun(run, tokenizer, tuned, base, torch_device, weight_format=weights)
    from peft import PeftModel, PeftType

    base = _load_causal_lm(run.base_model_path, torch_device, dtype, vocab_size=len(tokenizer))
    try:
        with warnings.catch_warnings():
            # peft calls a transformers method deprecated in v5; the warning means nothing to the user.
            warnings.simplefilter("ignore", FutureWarning)
            tuned = PeftModel.from_pretrained(base, str(run.tuned_path), is_trainable=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EvaluationError(f"{run.tuned_path}: the adapter does not fit the base model {run.base_model_path} "
                              f"({str(exc).splitlines()[0]}). Was the base model replaced? Re-run training.") from None
    tuned = tuned.to(torch_device).eval()
    if weights != "fp32":
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = convert_for_chat(tuned, weights)
        folded = (tuned.peft_config[tuned.active_adapter].peft_type == PeftType.LORA
                  and not any(isinstance(module, BaseTunerLayer) for module in tuned.modules()))
        return LoadedRun(run, tokenizer, tuned, None, torch_device, chat_layers=layers, weight_format=weights,
                         adapter_folded=folded)
    loaded = LoadedRun(run, tokenizer, tuned, None, torch_device, merge_for_speed=_can_merge(tuned, dtype))
    # The first merge is the slow one (0.8 s on the starter model, later switches 0.2 s): do it while
    # loading, so the first tuned answer starts as fast as the next ones.
    loaded._set_merged(True)
    return loaded
