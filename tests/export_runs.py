"""Run folders for the export tests, written in the layout of docs/ARCHITECTURE.md without training.

A LoRA adapter gets random, non-zero B matrices (PEFT starts them at zero), so that merging it
visibly changes the model's outputs; a "full" run stores a perturbed copy of the model.
"""
from __future__ import annotations

import json
from pathlib import Path


def _write_common(run: Path, base_model: Path, method: str) -> None:
    from engine import config
    from transformers import AutoTokenizer

    run.mkdir(parents=True, exist_ok=True)
    cfg = config.RunConfig()
    cfg.training.plan, cfg.training.keep_general = "custom", "off"  # these settings exactly
    cfg.model.name = str(base_model)
    cfg.method.name = method
    config.save(cfg, run / "run.yaml")
    info = {"base_model_path": str(base_model), "method": method, "template": "auto", "status": "completed",
            "best_step": 10, "created": "2026-11-22T19:00:00", "finished": "2026-11-22T19:05:00"}
    (run / "run-info.json").write_text(json.dumps(info), encoding="utf-8")
    AutoTokenizer.from_pretrained(str(base_model)).save_pretrained(run / "tokenizer")


def make_lora_run(run: Path, base_model: Path, *, method: str = "lora", seed: int = 1, zero: bool = False) -> Path:
    """A finished LoRA (or QLoRA-labelled) run on `base_model`; `zero` keeps PEFT's zero-init B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    _write_common(run, base_model, method)
    model = AutoModelForCausalLM.from_pretrained(str(base_model))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    if not zero:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    peft_model.save_pretrained(str(run / "adapter"))
    return run


def make_prefix_run(run: Path, base_model: Path) -> Path:
    """A finished prefix-tuning run (virtual tokens: exportable as an adapter only)."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    _write_common(run, base_model, "prefix")
    model = AutoModelForCausalLM.from_pretrained(str(base_model))
    get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")).save_pretrained(
        str(run / "adapter"))
    return run


def make_full_run(run: Path, base_model: Path, *, seed: int = 2) -> Path:
    """A finished full fine-tuning run: the whole model, slightly changed, in RUN/model/."""
    import torch
    from transformers import AutoModelForCausalLM

    _write_common(run, base_model, "full")
    model = AutoModelForCausalLM.from_pretrained(str(base_model))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    model.save_pretrained(str(run / "model"), safe_serialization=True)
    return run


def last_logits(model, tokenizer, text: str):
    """Next-token logits after `text` (float32), for comparing two models on the same input."""
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0, -1].float()
