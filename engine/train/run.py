"""`run_training`: from a RunConfig to a finished run folder, reporting everything as events.

Set-up (model, tokenizer, data, run folder), the loop, and the ending: the best checkpoint's
weights become RUN/adapter (or RUN/model for full fine-tuning). Every problem the user can cause
ends as a `Failed` event with a plain-words reason and hint, never as a traceback.
"""
from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Optional

import torch

from engine import config as cfg
from engine.errors import TunesmithError
from engine.events import Event, Failed, Finished, Notice, Started
from engine.train import checkpoint as ckpt
from engine.train import distributed, hardware, kernels
from engine.train.batching import steps_per_epoch
from engine.train.loop import NonFiniteLoss, TrainingLoop
from engine.train.loss import TokenLoss
from engine.train.methods import load_model, trainable_counts
from engine.train.rundir import RunFolder, default_run_dir

OOM_HINT = ("Try a smaller batch (training.micro_batch_size), a shorter maximum length (data.max_length), "
            "gradient checkpointing (training.gradient_checkpointing=on), or QLoRA.")


class _Emitter:
    """Sends each event to metrics.jsonl (once the run folder exists) and to the caller's sink; rank 0 only."""

    def __init__(self, sink, main: bool):
        self.sink, self.main, self.folder = sink, main, None
        self.pending: list[Event] = []

    def __call__(self, event: Event) -> None:
        if not self.main:
            return
        if self.folder is None:
            self.pending.append(event)
        else:
            self.folder.emit(event)
        if self.sink is not None:
            self.sink(event)

    def attach(self, folder: RunFolder) -> None:
        self.folder = folder
        for event in self.pending:
            folder.emit(event)
        self.pending.clear()


def total_steps_for(config: cfg.RunConfig, train_examples: int) -> int:
    t = config.training
    if t.max_steps:
        return t.max_steps
    return max(1, math.ceil(t.epochs * steps_per_epoch(train_examples, t.batch_size)))


def _load_data(config: cfg.RunConfig, tokenizer):
    from engine.data.build import build_training_data

    return build_training_data(config, tokenizer)


def _run_dir_for(config: cfg.RunConfig, resume_from) -> tuple[Path, Optional[Path]]:
    """(run folder, checkpoint to resume from or None)."""
    if resume_from:
        path = Path(resume_from)
        if ckpt.is_complete(path):
            return path.parent.parent, path
        ckpt.clean_incomplete(path / "checkpoints")
        return path, ckpt.latest_checkpoint(path / "checkpoints")
    return (Path(config.out) if config.out else default_run_dir(config)), None


def _maybe_gradient_checkpointing(config, model, hw, emit) -> None:
    from engine.train.memory import available_memory, estimate_memory_for_model

    choice = config.training.gradient_checkpointing
    turn_on = choice == "on"
    if choice == "auto":
        need = estimate_memory_for_model(config, model, hw.device)
        turn_on = need > 0.9 * available_memory(hw.device)
        if turn_on:
            emit(Notice(message=f"Memory is tight (about {need / 2**30:.1f} GiB needed): recomputing "
                                "activations to save memory, which is slower.", level="warning"))
    if turn_on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _write_output(folder: RunFolder, method: str, model, tokenizer, state, step: int) -> Path:
    """Final weights: the best checkpoint's when validation ran, else the current ones."""
    best = state.best_step
    if best is not None and best != step and (folder.checkpoints / ckpt.checkpoint_name(best)).is_dir():
        ckpt.load_trainable(model, folder.checkpoints / ckpt.checkpoint_name(best))
    out = folder.output_dir(method)
    model.save_pretrained(str(out))
    if method == "full":
        tokenizer.save_pretrained(str(out))
    return out


def _general_curve(config: cfg.RunConfig, tokenizer, hw, emit, data):
    """The live general-knowledge scorer (engine.train.general_curve), or None when switched off or unusable."""
    if not config.training.general_curve or not data.val:
        return None  # it is scored at each validation: without validation there is no curve
    from engine.evaluate.runfolder import EvaluationError
    from engine.train.general_curve import GeneralCurve

    try:
        return GeneralCurve(tokenizer, hw.autocast_dtype)
    except EvaluationError as exc:
        emit(Notice(message=f"No general-knowledge curve this time: {exc}", level="warning"))
        return None


def run_training(config: cfg.RunConfig, sink=None, stop=None, resume_from=None, *, data=None) -> Event:
    """Train as `config` says and return the `Finished` or `Failed` event that ended the run.

    sink: callable receiving every event. stop: an Event-like object; when set, the current step
    finishes, a checkpoint is saved and the run ends with Finished(reason="stopped").
    resume_from: a run folder (its latest complete checkpoint) or one checkpoint folder.
    data: already-built training data (train/val lists of Rendered, val_examples, test_examples); built from
    config.data when None.
    """
    try:
        hw = hardware.choose(config.training.precision)
    except TunesmithError as exc:  # e.g. a misspelt TUNESMITH_PRECISION
        failed = Failed(reason=str(exc), hint="Fix the problem above and start the run again.")
        if sink is not None:
            sink(failed)
        return failed
    dist = distributed.init_from_env(hw.device)
    emit = _Emitter(sink, dist.main)
    try:
        return _run(config, emit, stop, resume_from, data, hw, dist)
    except TunesmithError as exc:
        failed = Failed(reason=str(exc), hint="Fix the problem above and start the run again.")
    except NonFiniteLoss as exc:
        failed = Failed(reason=f"Training went unstable: the {exc} (not a number).",
                        hint="The learning rate is probably too high; lower it (e.g. by 10x) and start again. "
                             "The last good checkpoint is kept in the run folder.")
    except torch.OutOfMemoryError:
        failed = Failed(reason="The GPU ran out of memory.", hint=OOM_HINT, log_tail=traceback.format_exc()[-4000:])
    except MemoryError:
        failed = Failed(reason="The computer ran out of memory.", hint=OOM_HINT, log_tail=traceback.format_exc()[-4000:])
    emit(failed)
    folder = emit.folder
    if folder is not None and dist.main:
        folder.finish("failed", folder.read_info().get("best_step"))
    distributed.shutdown(dist)
    return failed


def _run(config, emit, stop, resume_from, data, hw, dist) -> Event:
    from transformers.utils import logging as hf_logging

    from engine.models import resolve_model
    from engine.templates import load_tokenizer, template_name

    for problem in cfg.validate(config):
        emit(Notice(message=problem.message, level="warning"))
    for note in hw.notes:
        emit(Notice(message=note))
    hf_logging.disable_progress_bar()
    if hw.device.type == "cpu":
        hardware.set_threads(config.training.threads)
    torch.manual_seed(config.training.seed)

    run_path, resume_ckpt = _run_dir_for(config, resume_from)
    run_path = Path(dist.broadcast(str(run_path)))
    model_dir = resolve_model(config.model.name)
    tokenizer = load_tokenizer(model_dir, config.model.template)
    if data is None:
        data = _load_data(config, tokenizer)
    for warning in getattr(data, "warnings", []) or []:
        emit(Notice(message=str(warning), level="warning"))
    if not data.train:
        raise cfg.ConfigError("No usable training examples: check the data file and its format.")

    folder = RunFolder(run_path)
    loaded = load_model(config, model_dir, hw.device, torch.bfloat16 if hw.precision == "bf16" else torch.float32,
                        notice=lambda message: emit(Notice(message=message, level="warning")))
    if dist.main:
        folder.create(config, base_model_path=str(model_dir), method=loaded.method,
                      template=template_name(tokenizer))
        ckpt.clean_incomplete(folder.checkpoints)
        folder.write_heldout(getattr(data, "val_examples", []) or [], getattr(data, "test_examples", []) or [])
        folder.save_tokenizer(tokenizer)
        emit.attach(folder)
    model = loaded.model
    _maybe_gradient_checkpointing(config, model, hw, emit)
    warn = lambda message: emit(Notice(message=message, level="warning"))  # noqa: E731
    kernels.apply_fused_kernels(model, config.training.fused_kernels, hw.device, notice=warn)
    kernels.compile_decoder_layers(model, config.training.compile, hw.device, notice=warn)

    total_steps = total_steps_for(config, len(data.train))
    loss_module = TokenLoss(model, fast=config.training.label_only_logits)
    runner = distributed.wrap(loss_module, dist, hw.device)
    loop = TrainingLoop(config=config, model=model, loss_module=loss_module, train=data.train, val=data.val,
                        hardware=hw, dist=dist, folder=folder, emit=emit, pad_id=tokenizer.pad_token_id or 0,
                        total_steps=total_steps, stop=stop, general=_general_curve(config, tokenizer, hw, emit, data))
    if resume_ckpt is not None:
        loop.resume(resume_ckpt)
        emit(Notice(message=f"Resuming from step {loop.start_step} ({resume_ckpt.name})."))
    trainable, total = trainable_counts(model)
    emit(Started(run_dir=str(run_path), method=loaded.method, device=hw.describe(), trainable_params=trainable,
                 total_params=total, train_examples=len(data.train), val_examples=len(data.val),
                 total_steps=total_steps, test_examples=len(getattr(data, "test_examples", []) or [])))
    try:
        result = loop.run(runner)
    except NonFiniteLoss:
        if dist.main and loop.state.last_good_step:
            folder.update_info(last_good_step=loop.state.last_good_step)
        raise
    out = None
    if dist.main:
        out = _write_output(folder, loaded.method, model, tokenizer, result.state, result.step)
        folder.finish(result.reason, result.state.best_step)
    finished = Finished(run_dir=str(run_path), output_path=str(out or folder.output_dir(loaded.method)),
                        reason=result.reason, step=result.step, best_step=result.state.best_step,
                        best_val_loss=result.state.best_val_loss)
    emit(finished)
    distributed.shutdown(dist)
    return finished
