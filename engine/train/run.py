"""`run_training`: from a RunConfig to a finished run folder, reporting everything as events.

Set-up (model, tokenizer, data, run folder), the loop, and the ending: the best checkpoint's
weights become RUN/adapter (or RUN/model for full fine-tuning). Every problem the user can cause
ends as a `Failed` event with a plain-words reason and hint, never as a traceback.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Optional

import torch

from engine import config as cfg
from engine import failures, remote_code
from engine.data.build import build_data
from engine.events import Event, Failed, Finished, Notice, Planned, Started
from engine.train import checkpoint as ckpt
from engine.train import autoplan, calibrate, distributed, hardware, kernels, timing
from engine.train.batching import steps_per_epoch
from engine.train.details import DETAILS_FILE, LibraryMessages
from engine.train.lever_check import check_levers
from engine.train.loop import NonFiniteLoss, TrainingLoop, autocast_for
from engine.train.loss import TokenLoss
from engine.train.methods import load_model, trainable_counts
from engine.train.rundir import RunFolder, RunFolderError, default_run_dir

# Settings an automatic plan chooses: warnings about their configured values do not apply.
PLANNED_KEYS = {"training.epochs", "training.lr", "training.batch_size", "training.max_steps",
                "training.warmup_ratio", "training.eval_every", "training.save_every"}

class _Emitter:
    """Sends each event to metrics.jsonl (once the run folder exists) and to the caller's sink; rank 0 only."""

    def __init__(self, sink, main: bool = True):
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


def _objective(config: cfg.RunConfig, model) -> tuple:
    """(loss module, loop class) for training.objective: supervised tokens, or preference pairs."""
    t = config.training
    if t.objective == "sft":
        return TokenLoss(model, fast=t.label_only_logits), TrainingLoop
    from engine.train.preference import PreferenceLoss
    from engine.train.preference_loop import PreferenceLoop

    return PreferenceLoss(model, t.objective, t.beta, fast=t.label_only_logits), PreferenceLoop


def _run_dir_for(config: cfg.RunConfig, resume_from) -> tuple[Path, list[Path]]:
    """(run folder, checkpoints to try resuming from, the preferred first; [] for a new run)."""
    if resume_from:
        path = Path(resume_from)
        if ckpt.is_complete(path):  # one checkpoint; the older ones are the fallbacks should it be damaged
            older = [p for p in ckpt.list_checkpoints(path.parent) if ckpt.step_of(p) < ckpt.step_of(path)]
            return path.parent.parent, [path] + older[::-1]
        ckpt.clean_incomplete(path / "checkpoints")
        return path, ckpt.list_checkpoints(path / "checkpoints")[::-1]
    return (Path(config.out) if config.out else default_run_dir(config)), []


def _resume(loop: TrainingLoop, candidates: list[Path], emit) -> Path:
    """Load the newest checkpoint that reads back whole; damaged ones are skipped with a message.

    A checkpoint that asks to run code (CheckpointError.unsafe) stops the run: it was not written
    by Tunesmith, and the folder around it cannot be trusted either.
    """
    for number, path in enumerate(candidates):
        try:
            loop.resume(path)
            return path
        except ckpt.CheckpointError as exc:
            if exc.unsafe or number == len(candidates) - 1:
                raise
            emit(Notice(message=f"Checkpoint {path.name} cannot be used: {exc} Resuming from the one before it "
                                "instead.", level="warning"))
    raise RunFolderError("There is no complete checkpoint to resume from; start the run again.")


def _set_aside_abandoned(folder: RunFolder, step: int, emit) -> None:
    """Later checkpoints belong to the branch this resume leaves: move them where pruning cannot mix them up."""
    moved = ckpt.set_aside_later(folder.checkpoints, step)
    if moved:
        steps = ", ".join(str(int(path.name.split("-")[1])) for path in moved)  # step-000060[-2]
        emit(Notice(message=f"Resuming from step {step}: the later checkpoints (step {steps}) belong to the "
                            f"training this resume replaces; they were moved to {moved[0].parent} (delete that "
                            "folder to free the space).", level="warning"))


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


def _clock(config, plan, data, general, model, loss_module, hw, model_dir, total_steps, startup_s):
    """(the timer that turns the run's estimate into each step's ETA, the Planned event that states it)."""
    rate = calibrate.stored_rate(config, model_dir, hw.device.type)
    if rate is None:  # first run of this model and method here: time a few passes of the loaded model
        # timed on token batches whatever the objective: a preference pair costs its two answers' tokens
        timed = loss_module if isinstance(loss_module, TokenLoss) else TokenLoss(model, fast=loss_module.fast)
        rate = calibrate.measure(model, timed, hw, startup_s=startup_s or 0.0)
    work = autoplan.run_work(plan, config, data.train, data.val, hw.device.type, general=general)
    work.steps = total_steps
    estimate = timing.estimate(work, calibrate.model_shape_of(model), rate)
    planned = Planned(explanation=plan.explanation, settings=autoplan.settings_of(plan),
                      estimate_s=round(estimate.total_s - estimate.startup_s, 1), plan=config.training.plan)
    key = calibrate.cache_key(config, model_dir, hw.device.type)
    return calibrate.RunTimer(key, rate, estimate, total_steps, work.validations, startup_s), planned


def run_training(config: cfg.RunConfig, sink=None, stop=None, resume_from=None, *, data=None) -> Event:
    """Train as `config` says and return the `Finished` or `Failed` event that ended the run.

    sink: callable receiving every event. stop: an Event-like object; when set, the current step
    finishes, a checkpoint is saved and the run ends with Finished(reason="stopped").
    resume_from: a run folder (its latest complete checkpoint) or one checkpoint folder.
    data: already-built training data (train/val lists of Rendered, val_examples, test_examples); built from
    config.data when None.

    Whatever goes wrong, the run folder (once it exists) ends in a final state: run-info.json says
    "failed" with the reason and what to do, and what was kept.
    """
    called_at = time.monotonic()
    emit = _Emitter(sink, main=True)
    dist = None
    with LibraryMessages() as library:
        try:
            hw = hardware.choose(config.training.precision)
            dist = distributed.init_from_env(hw.device)
            emit.main = dist.main
            with remote_code.allowed(config.model.trust_remote_code):
                return _run(config, emit, stop, resume_from, data, hw, dist, library, called_at)
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised unless it is an Exception
            failed = _failure(exc, emit.folder)
            emit(failed)
            if emit.folder is not None and emit.main:
                emit.folder.finish("failed", emit.folder.read_info().get("best_step"), reason=failed.reason,
                                   hint=failed.hint)
            if not isinstance(exc, Exception):
                raise  # Ctrl-C twice, SystemExit: recorded, and still ending the process
            return failed
        finally:
            if dist is not None:
                distributed.shutdown(dist)


def _failure(exc: BaseException, folder: Optional[RunFolder]) -> Failed:
    """The Failed event for `exc`, saying which checkpoint survived."""
    latest = ckpt.latest_checkpoint(folder.checkpoints) if folder is not None else None
    kept = ""
    if latest is not None:
        kept = (f"The last complete checkpoint (step {ckpt.step_of(latest)}) is kept: chat with it, evaluate or "
                "export it, or resume from it in the Training tab's run history.")
    if isinstance(exc, NonFiniteLoss):
        return Failed(reason=f"Training went unstable: the {exc} (not a number).",
                      hint=" ".join(filter(None, ["The learning rate is probably too high; lower it (e.g. by 10x) "
                                                  "and start again.", kept])))
    return failures.describe(exc, "training", fix_hint="Fix the problem above and start the run again.", kept=kept)


def _run(config, emit, stop, resume_from, data, hw, dist, library, called_at) -> Event:
    from transformers.utils import logging as hf_logging

    from engine.models import resolve_model
    from engine.templates import load_tokenizer, template_name

    for problem in cfg.validate(config):
        if config.training.plan == "auto" and problem.key in PLANNED_KEYS:
            continue  # the plan chooses these; its own choices are checked against the same guard rails
        emit(Notice(message=problem.message, level="warning"))
    for note in hw.notes:
        emit(Notice(message=note))
    hf_logging.disable_progress_bar()
    if hw.device.type == "cpu":
        hardware.set_threads(config.training.threads)
    torch.manual_seed(config.training.seed)

    run_path, resume_candidates = _run_dir_for(config, resume_from)
    run_path = Path(dist.broadcast(str(run_path)))
    model_dir = resolve_model(config.model.name)
    if config.model.trust_remote_code:
        emit(Notice(message=remote_code.warning(model_dir), level="warning"))
    tokenizer = load_tokenizer(model_dir, config.model.template)
    if data is None:
        data = build_data(config, tokenizer)
    for warning in getattr(data, "warnings", []) or []:
        emit(Notice(message=str(warning), level="warning"))
    if not data.train:
        raise cfg.ConfigError("No usable training examples: check the data file and its format.")

    plan = autoplan.plan_for(config, autoplan.make_inputs(config, data.train, data.val, model_dir, hw.device.type,
                                                          gpus=dist.world))
    autoplan.apply(config, plan)  # run.yaml then records `plan: auto` and the values it resolved to
    for warning in plan.warnings:
        emit(Notice(message=warning, level="warning"))

    # The run folder exists before the model loads, so that a failure from here on is recorded in it.
    folder = RunFolder(run_path)
    config = dataclasses.replace(config, out=str(run_path))  # run.yaml names where the run is (it may have moved)
    if dist.main:
        folder.create(config, base_model_path=str(model_dir), method=config.method.name,
                      template=template_name(tokenizer))
        if config.model.trust_remote_code:  # chat, evaluation and export of this run load it the same way
            folder.update_info(trust_remote_code=True)
        ckpt.clean_incomplete(folder.checkpoints)
        folder.write_heldout(getattr(data, "val_examples", []) or [], getattr(data, "test_examples", []) or [])
        folder.save_tokenizer(tokenizer)
        folder.write_plan(plan.to_dict())
        emit.attach(folder)
        library.attach(folder.path / DETAILS_FILE)
    loaded = load_model(config, model_dir, hw.device, torch.bfloat16 if hw.precision == "bf16" else torch.float32,
                        notice=lambda message: emit(Notice(message=message, level="warning")))
    if dist.main and loaded.method != config.method.name:
        folder.update_info(method=loaded.method)  # QLoRA fell back to LoRA
    model = loaded.model
    _maybe_gradient_checkpointing(config, model, hw, emit)
    warn = lambda message: emit(Notice(message=message, level="warning"))  # noqa: E731
    kernels.apply_fused_kernels(model, config.training.fused_kernels, hw.device, notice=warn)
    kernels.compile_decoder_layers(model, config.training.compile, hw.device, notice=warn)

    startup_s = calibrate.run_startup(called_at)  # before the one-off work below
    general = None
    if plan.keep_general:
        from engine.train import keep_general

        general = keep_general.prepare(plan, loaded.method, model, tokenizer, model_dir, config,
                                       notice=lambda message, level="info": emit(Notice(message=message, level=level)))
    total_steps = total_steps_for(config, len(data.train))
    loss_module, loop_class = _objective(config, model)
    if config.training.objective == "sft":  # the check compares token losses; pairs keep the allow-list's choice
        fallback = check_levers(loss_module, config, data.train, tokenizer.pad_token_id or 0, hw.precision,
                                autocast_for(hw))
        if fallback:
            emit(Notice(message=fallback))
    clock, planned = _clock(config, plan, data, general, model, loss_module, hw, model_dir, total_steps, startup_s)
    runner = distributed.wrap(loss_module, dist, hw.device)
    loop = loop_class(config=config, model=model, loss_module=loss_module, train=data.train, val=data.val,
                        hardware=hw, dist=dist, folder=folder, emit=emit, pad_id=tokenizer.pad_token_id or 0,
                        total_steps=total_steps, stop=stop, general=_general_curve(config, tokenizer, hw, emit, data),
                        keep_general=general, clock=clock)
    if resume_from:
        resumed = _resume(loop, resume_candidates, emit)
        if dist.main:
            _set_aside_abandoned(folder, loop.start_step, emit)
        emit(Notice(message=f"Resuming from step {loop.start_step} ({resumed.name})."))
    for message in library.plain_words(loaded.method):
        emit(Notice(message=message))
    trainable, total = trainable_counts(model)
    emit(Started(run_dir=str(run_path), method=loaded.method, device=hw.describe(), trainable_params=trainable,
                 total_params=total, train_examples=len(data.train), val_examples=len(data.val),
                 total_steps=total_steps, test_examples=len(getattr(data, "test_examples", []) or [])))
    emit(planned)
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
        if clock is not None:
            clock.learn(loop.step_times)
    for message in library.plain_words(loaded.method):
        emit(Notice(message=message))
    finished = Finished(run_dir=str(run_path), output_path=str(out or folder.output_dir(loaded.method)),
                        reason=result.reason, step=result.step, best_step=result.state.best_step,
                        best_val_loss=result.state.best_val_loss)
    emit(finished)
    return finished
