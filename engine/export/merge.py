"""The trained model as one set of weights: the adapter folded into its base, or the full fine-tune."""
from __future__ import annotations

import shutil
from pathlib import Path

from engine import remote_code
from engine.export.errors import ExportError
from engine.export.run_folder import ADAPTER_METHODS, VIRTUAL_TOKEN_METHODS, RunSource

QLORA_NOTICE = ("This run trained a QLoRA adapter on the 4-bit base model. The export folds it into the "
                "full-precision base model instead, so the result is full size and its answers can differ "
                "slightly from the 4-bit model used during training.")


def check_mergeable(source: RunSource) -> None:
    """Prefix and prompt tuning learn virtual tokens, which cannot become part of the weights."""
    if source.method in VIRTUAL_TOKEN_METHODS:
        raise ExportError(f"This run used {source.method} tuning, which learns extra virtual tokens that cannot "
                          "be folded into the model's weights, so it has no merged or GGUF form. Export it as "
                          "'adapter' and load it with PEFT on top of the base model.")
    if source.method not in ADAPTER_METHODS and not source.is_full:
        raise ExportError(f"{source.run_dir}: unknown training method '{source.method}' in run-info.json.")


def merge_notices(source: RunSource) -> list[str]:
    """What the user should know about a merged export of this run."""
    return [QLORA_NOTICE] if source.method == "qlora" else []


def loading_message(source: RunSource) -> str:
    return "Loading the trained model" if source.is_full else "Loading the base model and merging the adapter"


def load_merged_model(source: RunSource):
    """The run's trained model in memory, in its base model's precision, ready to save or convert.

    QLoRA adapters are merged into the full-precision base: merging into 4-bit weights would round
    the update away, and a 4-bit checkpoint is not what other tools expect anyway.
    """
    from transformers import AutoModelForCausalLM

    check_mergeable(source)
    if source.is_full:
        return AutoModelForCausalLM.from_pretrained(str(source.model_dir), dtype="auto", **remote_code.kwargs())
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(str(source.base_model_path), dtype="auto", **remote_code.kwargs())
    try:
        tuned = PeftModel.from_pretrained(base, str(source.adapter_dir))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ExportError(f"The adapter in {source.adapter_dir} does not fit the base model at "
                          f"{source.base_model_path} ({exc}).") from None
    merged = tuned.merge_and_unload()
    merged.eval()
    return merged


def copy_tokenizer(source: RunSource, destination: Path) -> None:
    """The tokenizer files with the chat template used in training (tokenizer.json, chat_template.jinja...)."""
    for item in source.tokenizer_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, destination / item.name)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def write_adapter(source: RunSource, destination: Path) -> None:
    """A standard PEFT adapter folder, with the training tokenizer beside it."""
    if source.is_full:
        raise ExportError("This run fine-tuned the whole model, so there is no adapter to export. "
                          "Export 'merged' (the complete model) or a GGUF file instead.")
    copy_tokenizer(source, destination)
    for item in source.adapter_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, destination / item.name)


def write_merged(model, source: RunSource, destination: Path) -> None:
    """A plain Hugging Face model folder: safetensors weights, config, tokenizer and chat template."""
    model.save_pretrained(str(destination), safe_serialization=True)
    copy_tokenizer(source, destination)
