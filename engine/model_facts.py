"""What Tunesmith tells the user about a model folder before training: family, stored precision, chat template.

Read from the folder's small files only (config.json, the safetensors headers, tokenizer_config.json
and, for a model imported from GGUF, that file's header), so listing models stays instant and needs
no torch. A model converted from a quantized GGUF file (the starter model is the 4-bit Q4_1 file of
SmolLM2-135M-Instruct) keeps the rounding of that file after expansion to full precision, which is
worth saying: its answers are those of the 4-bit model, not of the original weights.
"""
from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from engine.families import family_name, is_verified

# safetensors dtype -> how people write it
_DTYPES = {"F32": "fp32", "BF16": "bf16", "F16": "fp16", "F64": "fp64", "F8_E4M3": "fp8", "F8_E5M2": "fp8",
           "I8": "int8", "U8": "uint8"}
STARTER_GGUF_TYPE = "Q4_1"  # what the starter's package holds, when its downloaded file is gone


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def safetensors_dtypes(folder: Path) -> Counter:
    """Parameters per stored dtype, from the safetensors headers (no weights are read)."""
    counts: Counter = Counter()
    for file in folder.glob("*.safetensors"):
        with open(file, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        for key, meta in header.items():
            if key != "__metadata__":
                size = 1
                for dim in meta["shape"]:
                    size *= dim
                counts[meta["dtype"]] += size
    return counts


def gguf_file_type(path: Path) -> Optional[str]:
    """The quantization of a GGUF file as llama.cpp names it ('Q4_1', 'Q8_0', 'F16'...), or None if unreadable."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        field = reader.fields.get("general.file_type")
        if field is not None:
            return gguf.LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        kinds = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) > 1)
        return kinds.most_common(1)[0][0] if kinds else None
    except Exception:  # a moved, partial or foreign file: the caller says what it knows without it
        return None


def stored_precision(folder: Path, info: dict) -> str:
    """How the weights were stored before Tunesmith had them: 'bf16', '4-bit (bitsandbytes)', 'Q4_1, expanded'..."""
    if info.get("source") in ("starter", "gguf"):
        kind = gguf_file_type(Path(info["gguf"])) if info.get("gguf") else None
        if kind is None and info.get("source") == "starter":
            kind = STARTER_GGUF_TYPE
        return f"{kind or 'GGUF'}, expanded"
    quant = _json(folder / "config.json").get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower()
    if method == "bitsandbytes":
        return "4-bit (bitsandbytes)" if quant.get("load_in_4bit") else "8-bit (bitsandbytes)"
    if method:
        bits = quant.get("bits")
        return f"{method.upper()} {bits}-bit" if bits else method.upper()
    counts = safetensors_dtypes(folder)
    if not counts:
        return "unknown"
    dtype = counts.most_common(1)[0][0]
    return _DTYPES.get(dtype, dtype.lower())


def has_chat_template(folder: Path) -> bool:
    """Whether the model brings its own chat template (an instruct/chat model) rather than being a base model."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    return bool(_json(folder / "tokenizer_config.json").get("chat_template"))


def facts(folder: Path, info: dict) -> dict:
    """family, stored_precision, has_chat_template, verified: for ModelInfo and the window."""
    kind = SimpleNamespace(model_type=_json(folder / "config.json").get("model_type", ""))
    return {"family": family_name(kind), "stored_precision": stored_precision(folder, info),
            "has_chat_template": has_chat_template(folder), "verified": is_verified(kind)}


def starter_note() -> str:
    """The honest label of the built-in starter model."""
    return ("The starter model is SmolLM2-135M-Instruct as a 4-bit (Q4_1) GGUF file, expanded to full precision: "
            "it answers like that 4-bit copy, not exactly like the original weights.")


def unverified_warning(family: str) -> str:
    """The plain words the window and the CLI use for a family outside the compatibility matrix."""
    return (f"{family} models are not among the families Tunesmith verifies (docs/MODELS.md). They train with the "
            "model's own attention and loss (exact, slower); chat and export have not been tested on them.")
