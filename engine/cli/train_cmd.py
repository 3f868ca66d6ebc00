"""`tunesmith-cli train`: fine-tune from a config file and/or flags, with a progress bar or raw events.

Flags override the config file; help texts come from the config fields' own metadata, so the
window's tooltips and this help never disagree.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

# flag -> (dotted config key, type); the help text is the field's own
FLAG_KEYS = {
    "model": ("model.name", str),
    "data": ("data.path", str),
    "val_data": ("data.val_path", str),
    "test_data": ("data.test_path", str),
    "epochs": ("training.epochs", float),
    "max_steps": ("training.max_steps", int),
    "lr": ("training.lr", float),
    "batch_size": ("training.batch_size", int),
    "max_length": ("data.max_length", int),
    "seed": ("training.seed", int),
    "objective": ("training.objective", str),
    "beta": ("training.beta", float),
    "out": ("out", str),
    "plan": ("training.plan", str),
    "keep_general": ("training.keep_general", str),
}
# Setting any of these by flag means "my own settings": the plan becomes custom unless --plan says otherwise.
CUSTOM_PLAN_FLAGS = ("epochs", "max_steps", "lr", "batch_size")


def _help(dotted: str) -> str:
    from engine.config import field_info

    section, _, name = dotted.rpartition(".")
    return field_info(section, name)["help"].replace("%", "%%")


def register(sub) -> None:
    from engine.config import METHODS

    parser = sub.add_parser("train", help="Fine-tune a model on your data.",
                            description="Fine-tune a model. Flags override the values in --config.")
    parser.add_argument("--config", metavar="RUN_YAML", help="A run configuration (YAML) to start from.")
    for flag, (key, kind) in FLAG_KEYS.items():
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, metavar=flag.upper(), help=_help(key))
    parser.add_argument("--map", action="append", default=[], metavar="COLUMN=ROLE",
                        help="Read COLUMN as ROLE (e.g. question=prompt); repeat for several columns.")
    parser.add_argument("--method", choices=METHODS, help=_help("method.name") + " Also takes the method's "
                        "default learning rate unless --lr is given.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Any other setting, e.g. --set method.lora_r=8 --set training.packing=false.")
    parser.add_argument("--events", choices=["jsonl"], help="Print every event as one JSON object per line "
                        "instead of the progress bar.")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help=_help("model.trust_remote_code") + " Same as --set model.trust_remote_code=true.")
    parser.add_argument("--print-config", action="store_true", help="Print the resolved configuration and exit.")
    parser.add_argument("--print-plan", action="store_true", help="Print the training plan (steps, examples per "
                        "step, learning rate, keep general ability, method) and how long it will take here, then "
                        "exit. The first time with a model this measures the computer's speed (seconds).")
    parser.add_argument("--resume", metavar="RUN_DIR", help="Continue a stopped run from its latest checkpoint.")
    parser.add_argument("--gpus", type=int, default=1, metavar="N",
                        help="Train data-parallel on N GPUs (or N CPU processes where there is no GPU).")
    parser.set_defaults(func=run)


def resolve_config(args):
    """The RunConfig from --config (or --resume's run.yaml), then flags, then --set."""
    from pathlib import Path

    from engine import config as cfg
    from engine.cli import UserError

    if args.config:
        config = cfg.load(args.config)
    elif args.resume and (Path(args.resume) / "run.yaml").is_file():
        config = cfg.load(Path(args.resume) / "run.yaml")
    else:
        config = cfg.RunConfig()
    if args.method:
        if args.lr is None:
            cfg.apply_method_defaults(config, args.method)
        else:
            config.method.name = args.method
    for flag, (key, _) in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            cfg.set_value(config, key, value, source="--" + flag.replace("_", "-"))
    if args.plan is None and any(getattr(args, flag) is not None for flag in CUSTOM_PLAN_FLAGS):
        config.training.plan = "custom"
    if args.map:
        mapping = dict(config.data.mapping)
        for pair in args.map:
            column, sep, role = pair.partition("=")
            if not sep or not column or not role:
                raise UserError(f"--map {pair!r}: write it as COLUMN=ROLE, e.g. --map question=prompt.")
            mapping[column.strip()] = role.strip()
        config.data.mapping = mapping
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set {pair!r}: write it as KEY=VALUE, e.g. --set training.lr=1e-4.")
        cfg.set_value(config, key.strip(), value.strip())
    if args.trust_remote_code:
        config.model.trust_remote_code = True
    if args.resume:
        config.out = args.resume
    return config


def _relaunch(args, argv: list[str]) -> int:
    """Run this same command under torch.distributed.run with N processes (rank 0 reports)."""
    import subprocess

    import torch

    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--gpus":
            skip = True
            continue
        if item.startswith("--gpus="):
            continue
        rest.append(item)
    if torch.cuda.is_available() and torch.cuda.device_count() < args.gpus:
        from engine.cli import UserError

        raise UserError(f"--gpus {args.gpus}: only {torch.cuda.device_count()} GPU(s) found.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}",
           "-m", "engine"] + rest
    return subprocess.call(cmd, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))


def run(args) -> int:
    from engine import config as cfg

    config = resolve_config(args)
    if args.print_config:
        print(cfg.dump_yaml(config), end="")
        return 0
    cfg.validate(config)  # a bad value stops here with the plain-words ConfigError message
    if args.print_plan:
        from engine.cli.chat_cmd import quiet_loading
        from engine.train.details import LibraryMessages
        from engine.train.preview import preview_plan

        quiet_loading()
        with LibraryMessages():  # the libraries' deprecation and kernel notes would bury the plan; nothing to keep
            plan = preview_plan(config, say=lambda message: print(message, file=sys.stderr))
        print(plan)
        return 0
    if args.gpus > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _relaunch(args, sys.argv[1:])

    from engine.events import Failed
    from engine.train import run_training

    stop = threading.Event()
    _stop_on_first_ctrl_c(stop)
    if args.events == "jsonl":
        result = run_training(config, lambda e: print(e.to_json(), flush=True), stop=stop, resume_from=args.resume)
    else:
        with ProgressView() as view:
            result = run_training(config, view, stop=stop, resume_from=args.resume)
    if isinstance(result, Failed):
        if args.events != "jsonl":
            print(f"error: {result.reason}\n{result.hint}", file=sys.stderr)
        return 1
    return 0


def _stop_on_first_ctrl_c(stop: threading.Event) -> None:
    """First Ctrl-C: finish the step, save and exit cleanly. Second: interrupt at once."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping after this step (press Ctrl-C again to abort)...", file=sys.stderr)

    def on_terminate(signum, frame):  # `kill`, a logout, a scheduler ending the job: stop as on Ctrl-C
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, on_terminate)


class ProgressView:
    """A sink for run_training that draws a rich progress bar (loss, validation, ETA) on stderr."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}{task.fields[pairs]}"),
                            TimeRemainingColumn(),
                            console=Console(stderr=True))
        self.task = None

    def __enter__(self) -> "ProgressView":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def __call__(self, event) -> None:
        from engine.events import (EvalMetric, Finished, FirstLoss, GeneralMetric, Notice, Planned, PreferenceMetric,
                                   Progress, Started, TrainMetric)
        from engine.train.timing import format_duration
        from engine.words import count

        say = self.bar.console.print
        if isinstance(event, Started):
            examples = (f"{count(event.train_examples, 'training example')}, "
                        f"{count(event.val_examples, 'validation example')}, "
                        f"{count(event.test_examples, 'test example')}")
            say(f"Training {event.method} on {event.device}: {event.trainable_params:,} of {event.total_params:,} "
                f"parameters trainable ({event.trainable_percent:.2f}%), {examples} (test: kept for the "
                f"evaluation, never trained on).\nRun folder: {event.run_dir}", markup=False)
            self.task = self.bar.add_task("train", total=event.total_steps, loss="-", val="-", pairs="")
        elif isinstance(event, Planned):
            when = f" Expected to take {format_duration(event.estimate_s)}." if event.estimate_s else ""
            say(f"Plan ({event.plan}): {event.explanation}{when}", markup=False)
        elif isinstance(event, Notice):
            say(("warning: " if event.level == "warning" else "") + event.message, markup=False)
        elif isinstance(event, Finished):
            best = f", best step {event.best_step} (val {event.best_val_loss:.4f})" if event.best_step else ""
            say(f"Finished ({event.reason}) at step {event.step}{best}. Result: {event.output_path}", markup=False)
        elif isinstance(event, GeneralMetric):
            say(event.describe(), markup=False)
        elif self.task is None:
            return
        elif isinstance(event, FirstLoss):
            self.bar.update(self.task, loss=f"{event.loss:.4f} (start)")
        elif isinstance(event, TrainMetric):
            self.bar.update(self.task, loss=f"{event.loss:.4f}")
        elif isinstance(event, Progress):
            self.bar.update(self.task, completed=event.step)
        elif isinstance(event, EvalMetric):
            self.bar.update(self.task, val=f"{event.val_loss:.4f} (best @ {event.best_step})")
        elif isinstance(event, PreferenceMetric) and event.split == "val":
            self.bar.update(self.task, pairs=f"  chosen preferred {100 * event.accuracy:.0f}% "
                                             f"(margin {event.reward_margin:+.2f})")
