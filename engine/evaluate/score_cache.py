"""The base model's benchmark scores, computed once per base model and kept in the data folder.

Every run trained from the same base model asks the base the same benchmark questions in the same
layout, so its answers are the same: scoring them again would double the cost of every evaluation.
The cache key names everything that could change a score: the model folder's identity (its path,
config.json's content, the weight files' names, sizes and modification times), the chat template
and vocabulary size of the run's tokenizer, the benchmark's digest, the number format and device
type, and the scorer's version. Scores are kept per item, so "quick" reuses what "full" computed.

DATA/cache/general-ability/KEY.json = {"key": {...what it was computed from...}, "scores": {item: [..]}}
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

SCORER_VERSION = "1"  # bump when the scoring itself changes, so old entries are not reused
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def cache_dir() -> Path:
    from engine.paths import data_dir

    path = data_dir() / "cache" / "general-ability"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_identity(folder) -> dict:
    """What identifies a model folder's weights without reading them all."""
    folder = Path(folder).expanduser().resolve()
    config = folder / "config.json"
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    return {"path": str(folder),
            "config": hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else "",
            "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def cache_key(model_folder, tokenizer, benchmark, precision: str, device_type: str) -> dict:
    template = str(getattr(tokenizer, "chat_template", "") or "")
    return {"model": model_identity(model_folder),
            "template": hashlib.sha256(template.encode("utf-8")).hexdigest()[:16], "vocabulary": len(tokenizer),
            "benchmark": f"{benchmark.version}/{benchmark.digest}", "precision": precision, "device": device_type,
            "scorer": SCORER_VERSION}


def _path_for(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    return cache_dir() / f"{digest}.json"


def load_scores(key: dict) -> dict[str, list[float]]:
    """The cached scores for `key` (item key -> choice scores); empty when there are none or the file is damaged."""
    path = _path_for(key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("key") != key or not isinstance(data.get("scores"), dict):
        return {}
    return data["scores"]


def save_scores(key: dict, scores: dict[str, list[float]]) -> Optional[Path]:
    """Add `scores` to the cache entry for `key` (atomically); a cache that cannot be written is skipped."""
    path = _path_for(key)
    merged = {**load_scores(key), **scores}
    temporary = path.with_suffix(".json.tmp")
    try:
        temporary.write_text(json.dumps({"key": key, "scores": merged}), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        return None
    return path
