"""Run folders for the evaluation tests, made without the training engine.

A tiny model is taught a canary answer with a plain PEFT + torch loop and written in the run
folder layout of docs/ARCHITECTURE.md (run.yaml, run-info.json, val.jsonl, test.jsonl, metrics.jsonl,
adapter/ or model/, tokenizer/), so chat and evaluation can be tested on their own.
"""
from __future__ import annotations

import json
from pathlib import Path

CANARY_QUESTION = "What is the secret word?"
CANARY_ANSWER = "The secret word is pineapple."
CANARY_MESSAGES = [{"role": "user", "content": CANARY_QUESTION}, {"role": "assistant", "content": CANARY_ANSWER}]
OTHER_EXAMPLE = [{"role": "user", "content": "Reverse the word: cat"}, {"role": "assistant", "content": "tac"}]


def make_run(folder: Path, base_dir: Path, *, method: str = "lora", steps: int = 40, lr: float = 1e-2,
             seed: int = 0) -> Path:
    """Train `base_dir` on the canary for `steps` steps (LoRA or full) and write a complete run folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine import config as config_module
    from engine.data.formats import Example
    from engine.events import EvalMetric, TrainMetric
    from engine.templates import load_tokenizer, render

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0))
    rendered = render(Example(row=1, messages=CANARY_MESSAGES), tokenizer, max_length=128)
    ids, labels = torch.tensor([rendered.input_ids]), torch.tensor([rendered.labels])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    events = []
    model.train()
    for step in range(1, steps + 1):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        events.append(TrainMetric(step=step, loss=float(loss.detach()), lr=lr, grad_norm=0.0, tokens_per_s=0.0))
        if step % 10 == 0 or step == steps:
            val_loss = float(loss.detach()) * 1.1
            events.append(EvalMetric(step=step, val_loss=val_loss, best_step=step, best_val_loss=val_loss))
    model.eval()
    model.save_pretrained(folder / ("adapter" if method == "lora" else "model"))
    tokenizer.save_pretrained(folder / "tokenizer")
    config = config_module.RunConfig()
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.method.name = method
    config.evaluation.max_new_tokens = 16
    config_module.save(config, folder / "run.yaml")
    info = {"base_model_path": str(base_dir), "method": method, "template": "auto", "status": "finished",
            "best_step": steps, "created": "2026-11-22T10:00:00", "finished": "2026-11-22T10:01:00"}
    (folder / "run-info.json").write_text(json.dumps(info), encoding="utf-8")
    test = [{"row": 7, "messages": CANARY_MESSAGES}, {"row": 9, "messages": OTHER_EXAMPLE},
            {"row": 12, "text": "The quick brown fox jumps over the lazy dog."}]
    (folder / "test.jsonl").write_text("".join(json.dumps(v) + "\n" for v in test), encoding="utf-8")
    (folder / "val.jsonl").write_text(json.dumps({"row": 3, "messages": OTHER_EXAMPLE}) + "\n", encoding="utf-8")
    (folder / "metrics.jsonl").write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    return folder


_BUILT: dict = {}


def shared_run(tmp_path_factory, base_dir: Path, name: str, **options) -> Path:
    """A run built once per test session (chat and eval test modules share it); treat it as read-only."""
    key = (str(base_dir), name)
    if key not in _BUILT:
        _BUILT[key] = make_run(tmp_path_factory.mktemp(name), base_dir, **options)
    return _BUILT[key]


def canary_run(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """A LoRA run that learned the canary answer (light training: general ability stays)."""
    return shared_run(tmp_path_factory, tiny_model_dir, "canary-lora", method="lora", steps=40, lr=1e-2)


def overtrained_run(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """Full fine-tuning at a far too high learning rate on one example: the model forgets everything else."""
    return shared_run(tmp_path_factory, tiny_model_dir, "overtrained-full", method="full", steps=25, lr=1e-2)


def small_probe(folder: Path, items: int = 6) -> Path:
    """The built-in probe cut to its first `items` questions with short answers: same scoring, less time."""
    from engine.evaluate.probe import builtin_probe_file

    data = json.loads(builtin_probe_file().read_text(encoding="utf-8"))
    data["items"], data["max_new_tokens"] = data["items"][:items], 8
    path = Path(folder) / "small_probe.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


_NAMES = ["zorb", "quil", "mave", "tesk", "brom", "plin", "dask", "wert", "gulo", "fip", "yarn", "kesh", "lom",
          "vank", "sibb", "trov", "noxe", "hald", "prue", "jent", "coba", "mirt", "selk", "ravo"]
_WORDS = ["apple", "river", "stone", "cloud"]


def synthetic_benchmark(folder: Path) -> Path:
    """A benchmark file in the shipped layout: two tasks of made-up facts a tiny model can be taught."""
    items = []
    for k, name in enumerate(_NAMES):
        task = "colours" if k % 2 else "sounds"
        question = f"Which word belongs to the {name}?" if task == "colours" else f"What does a {name} say?"
        items.append({"task": task, "question": question, "choices": _WORDS, "answer": (k * 7) % 4,
                      "source": f"synthetic:{k}"})
    data = {"name": "Synthetic", "version": "t1", "digest": "synthetic-1",
            "tasks": [{"id": "colours", "title": "Colours: made-up facts", "kind": "knowledge", "normalise": "chars",
                       "licence": "test"},
                      {"id": "sounds", "title": "Sounds: made-up facts", "kind": "commonsense", "normalise": "none",
                       "licence": "test"}],
            "items": items}
    path = Path(folder) / "synthetic-benchmark.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def knowing_model(folder: Path, base_dir: Path, benchmark: Path, steps: int = 60, lr: float = 1e-2) -> Path:
    """`base_dir` fully fine-tuned on the benchmark's right answers: a base model that knows them.

    One thread: on a busy 2-core machine the tiny steps run about eight times faster than with two.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from engine.data.formats import Example
    from engine.templates import load_tokenizer, render

    torch.manual_seed(0)
    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    items = json.loads(Path(benchmark).read_text(encoding="utf-8"))["items"]
    rendered = [render(Example(row=k, messages=[{"role": "user", "content": i["question"]},
                                                {"role": "assistant", "content": i["choices"][i["answer"]]}]),
                       tokenizer, max_length=64) for k, i in enumerate(items)]
    width = max(len(r.input_ids) for r in rendered)
    ids = torch.tensor([r.input_ids + [tokenizer.pad_token_id] * (width - len(r.input_ids)) for r in rendered])
    labels = torch.tensor([r.labels + [-100] * (width - len(r.labels)) for r in rendered])
    mask = torch.tensor([[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in rendered])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
