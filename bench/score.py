"""Quality parity: one scorer for both sides' adapters, on rows neither side trained on.

Training losses are not comparable across sides (packing changes which rows share a step and
the order they are seen), so after equal tokens (one epoch over the same rows) each adapter is
loaded onto a fresh copy of the base model and scored with the same code: the mean loss per
learned (assistant) token of the held-out rows.
"""
from __future__ import annotations

from pathlib import Path

from bench.rendering import IGNORE, load_tokenizer, render_file


def heldout_loss(model_dir: str, adapter_dir: str, heldout_path: str, max_length: int, device: str = "cpu",
                 include_base: bool = False) -> dict:
    """Token-weighted mean loss of the adapter on the held-out rows (and the untrained base's, if asked)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        return {"error": f"{adapter_dir}: no adapter_config.json, so there is no adapter to score"}
    tokenizer = load_tokenizer(model_dir)
    rendered, renderer = render_file(heldout_path, tokenizer, max_length)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    result = {"heldout_rows": len(rendered), "renderer": renderer}
    if include_base:
        result["base_heldout_loss"] = _mean_loss(base, rendered, device)
    model = PeftModel.from_pretrained(base, adapter_dir).to(device)
    result["heldout_loss"] = _mean_loss(model, rendered, device)
    return result


def _mean_loss(model, rendered: list[dict], device: str) -> float:
    """Sum of per-token cross-entropy over learned tokens divided by their count (one row at a time)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rendered:
            ids = torch.tensor([row["input_ids"]], device=device)
            labels = torch.tensor([row["labels"]], device=device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            if (target != IGNORE).sum() == 0:
                continue
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                     ignore_index=IGNORE, reduction="sum").item()
            count += int((target != IGNORE).sum())
    return total / max(1, count)


def adapter_usable(model_dir: str, adapter_dir: str) -> dict:
    """Load the adapter onto the base model and run one forward pass: is what a stop left behind usable?"""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter_dir)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
        return {"usable": bool(torch.isfinite(logits).all())}
    except Exception as exc:  # any failure to load or run means "not usable", said in words
        return {"usable": False, "why": f"{type(exc).__name__}: {exc}"[:300]}
