"""The baseline: a plain `transformers.Trainer` + PEFT LoRA script, written the way their docs show.

What a user following the docs keeps: the model in its stored precision (fp32 on CPU), rows
padded to the longest in each batch (`DataCollatorForSeq2Seq`), no packing, Trainer's default
optimizer, and for QLoRA `BitsAndBytesConfig(nf4, double quant, bf16 compute)` with
`prepare_model_for_kbit_training`. The "same precision" variant only adds `bf16=True`
(autocast), which is what our engine uses. Data, maximum length, effective batch, LoRA rank and
targets, learning rate, schedule and seed come from the same `Workload` as our engine's side,
and the rows are tokenized by the same renderer, so the learned tokens are identical.

Run by the race as a child (`python -m bench.baseline_hf JOB.json RESULT.json`), or by hand:
    python -m bench.baseline_hf --model DIR --data alpaca.json --examples 48 [--bf16] [--qlora]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.child import StepClock, gpu_peak_mb, peak_rss_mb, run_child, spawned_at, throughput  # noqa: E402
from bench.rendering import count_tokens, load_tokenizer, render_file  # noqa: E402
from bench.workload import Workload  # noqa: E402


def load_model(work: Workload, bf16: bool):
    """The base model plus LoRA (or QLoRA) adapters, as the PEFT quick-start builds it."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if work.method == "qlora":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        device_map = {"": 0} if work.device == "cuda" else {"": "cpu"}
        model = AutoModelForCausalLM.from_pretrained(work.model_dir, quantization_config=quant, device_map=device_map)
        model = prepare_model_for_kbit_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(work.model_dir)
    targets = work.target_modules if work.target_modules == "all-linear" else work.target_modules.split(",")
    lora = LoraConfig(r=work.lora_r, lora_alpha=work.lora_alpha, lora_dropout=work.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def make_dataset(rendered: list[dict]):
    """A `datasets.Dataset` as in the docs; a plain list serves the Trainer the same way without it."""
    try:
        from datasets import Dataset
    except ImportError:
        return rendered
    return Dataset.from_list(rendered)


def train(work: Workload, *, bf16: bool = False, out_dir: str, stop_at_step: int = 0) -> dict:
    """Train one epoch with Trainer; returns timings, losses and where the adapter was saved.

    stop_at_step > 0: a timer asks the run to stop half a step after that step ends (as a user
    pressing Stop mid-step would), and the stop latency is measured up to the saved adapter.
    """
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    started = spawned_at()
    tokenizer = load_tokenizer(work.model_dir)
    rendered, renderer = render_file(work.train_path, tokenizer, work.max_length)
    model = load_model(work, bf16)
    model_loaded = time.time()
    clock = StepClock()
    stop_requested = threading.Event()
    stop_marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.begin()

        def on_step_end(self, args, state, control, **kwargs):
            clock.step(state.global_step)
            if stop_at_step and state.global_step == stop_at_step and "timer" not in stop_marks:
                stop_marks["timer"] = time.time()
                delay = (clock.last_step_s() or 0.0) / 2
                threading.Timer(delay, lambda: (stop_marks.setdefault("requested", time.time()),
                                                stop_requested.set())).start()
            if stop_requested.is_set():
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                clock.loss(state.global_step, logs["loss"])

    args = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=work.batch_size, gradient_accumulation_steps=1,
        num_train_epochs=1, learning_rate=work.lr, lr_scheduler_type=work.scheduler,
        warmup_steps=work.warmup_ratio, max_grad_norm=work.max_grad_norm, weight_decay=0.0,
        logging_steps=1, save_strategy="no", report_to="none", seed=work.seed, bf16=bf16,
        use_cpu=work.device == "cpu", disable_tqdm=True)
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset(rendered), data_collator=collator,
                      callbacks=[Clock()])
    trainer.train()
    adapter_dir = str(Path(out_dir) / "adapter")
    trainer.save_model(adapter_dir)
    returned = time.time()
    tokens = count_tokens(rendered)
    first_loss = clock.first_loss_time()
    result = {
        "side": "baseline-bf16" if bf16 else "baseline", "renderer": renderer, "adapter_dir": adapter_dir,
        "tokens": tokens, "steps_total": work.steps, "steps_done": max(clock.step_times, default=0),
        "throughput": throughput(clock.step_times, work.steps, tokens["tokens"], work.warmup_steps_excluded),
        "label_throughput": throughput(clock.step_times, work.steps, tokens["label_tokens"],
                                       work.warmup_steps_excluded),
        "load_s": model_loaded - started,
        "first_loss_s": None if first_loss is None else first_loss - started,
        "first_loss_after_load_s": None if first_loss is None else first_loss - model_loaded,
        "median_step_s": clock.median_step_s(), "tail_train_loss": clock.tail_loss(),
        "losses": [(s, loss) for s, loss, _ in clock.losses], "total_s": returned - started,
        "peak_rss_mb": peak_rss_mb(), "gpu_peak_mb": gpu_peak_mb(),
    }
    if stop_at_step:
        requested = stop_marks.get("requested")
        result["stop"] = {"requested_at_step": stop_at_step,
                          "latency_s": None if requested is None else returned - requested,
                          "adapter_ok": (Path(adapter_dir) / "adapter_config.json").is_file()}
    return result


def child_job(spec: dict) -> dict:
    """The race's entry: spec = {"workload": ..., "bf16": bool, "out_dir": str, "score": bool, "stop_at_step": int}."""
    work = Workload.from_json(json.dumps(spec["workload"]))
    result = train(work, bf16=spec.get("bf16", False), out_dir=spec["out_dir"], stop_at_step=spec.get("stop_at_step", 0))
    if result.get("stop") and result["stop"]["adapter_ok"]:
        from bench.score import adapter_usable

        result["stop"].update(adapter_usable(work.model_dir, result["adapter_dir"]))
        result["stop"]["adapter_ok"] = result["stop"]["usable"]
    if spec.get("score"):
        from bench.score import heldout_loss

        result["score"] = heldout_loss(work.model_dir, result["adapter_dir"], work.heldout_path, work.max_length,
                                       work.device)
    return result


def main(argv: list[str] | None = None) -> int:
    """Stand-alone use: train the baseline once and print its numbers."""
    from bench.workload import DEFAULT_DATA, write_subsets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="alpaca JSON file")
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (the 'same precision' variant)")
    parser.add_argument("--qlora", action="store_true")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        train_path, heldout_path = write_subsets(Path(args.data), args.examples, Path(tmp))
        work = Workload(model_dir=args.model, train_path=str(train_path), heldout_path=str(heldout_path),
                        examples=args.examples, max_length=args.max_length, device=args.device,
                        method="qlora" if args.qlora else "lora")
        result = train(work, bf16=args.bf16, out_dir=tmp)
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].endswith(".json") and not sys.argv[1].startswith("-"):
        run_child(child_job)
    else:
        sys.exit(main())
