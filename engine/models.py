"""Base models: the built-in starter model, imported GGUF files, local folders and hub ids.

Every model ends up as a plain Hugging Face folder (config, safetensors, tokenizer with its chat
template) so that the rest of the engine deals with one kind of thing. GGUF files are loaded with
transformers' GGUF support, dequantized, and saved once; later runs reuse the folder offline.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from engine import paths, remote_code
from engine.errors import TunesmithError

STARTER_NAME = "SmolLM2-135M-Instruct"
STARTER_FOLDER = "smollm2-135m-instruct"
STARTER_CONVERTED_BYTES = 545_000_000  # 135 M parameters in fp32 plus the tokenizer
INFO_FILE = "tunesmith-model.json"

Progress = Callable[[str, float], None]  # (message, fraction 0..1)


class ModelError(TunesmithError, RuntimeError):
    """A model that cannot be found, fetched or converted; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str  # the Hugging Face folder
    parameters: int
    size_bytes: int
    source: str  # starter | gguf | local | hub
    family: str = ""  # 'Llama', 'Qwen2', ... (engine.families)
    stored_precision: str = ""  # how the weights were stored: 'bf16', 'Q4_1, expanded' (engine.model_facts)
    has_chat_template: bool = False
    verified: bool = False  # the family is in the compatibility matrix (docs/MODELS.md)

    def to_dict(self) -> dict:
        return asdict(self)


def _say(progress: Optional[Progress], message: str, fraction: float) -> None:
    if progress:
        progress(message, fraction)


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _is_complete(folder: Path) -> bool:
    """A converted folder counts only once its info file was written, which happens last."""
    return _is_hf_folder(folder) and (folder / INFO_FILE).is_file()


def starter_dir() -> Path:
    return paths.models_dir() / STARTER_FOLDER


def starter_ready() -> bool:
    return _is_complete(starter_dir())


def prepare_starter(progress: Optional[Progress] = None) -> Path:
    """Make sure the starter model exists as a Hugging Face folder; returns that folder.

    The first call converts the GGUF (shipped in the bundle, else downloaded once): a minute or so;
    later calls return at once, offline.
    """
    from engine import download, starter

    folder = starter_dir()
    if _is_complete(folder):
        return folder
    # Check the room the converted model needs before anything is downloaded or written.
    download.check_free_space(folder.parent, STARTER_CONVERTED_BYTES, "the starter model")
    gguf_path = starter.starter_gguf(progress)
    return convert_gguf(gguf_path, folder, display_name=STARTER_NAME, source="starter", progress=progress)


def _parameter_count(folder: Path) -> int:
    """Count parameters from the safetensors headers alone (no weights are read)."""
    from engine.model_facts import safetensors_dtypes

    return sum(safetensors_dtypes(folder).values())


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def convert_gguf(gguf_path: Path, folder: Path, *, display_name: str, source: str = "gguf",
                 progress: Optional[Progress] = None) -> Path:
    """Load a GGUF file with transformers (dequantizing it) and save a Hugging Face folder.

    Written to a temporary folder and renamed at the end, so a crash never leaves half a model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ModelError(f"{gguf_path}: no such GGUF file.")
    _say(progress, f"Reading {gguf_path.name} (dequantizing)...", 0.35)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds here; the user needs one message
        raise ModelError(f"{gguf_path.name} could not be read as a model: {exc}. Tunesmith imports GGUF files "
                         "of the architectures transformers supports (llama, mistral, qwen2, phi3, gemma...).") from exc
    # A GGUF-loaded model refuses save_pretrained ("not serializable") while it still carries the
    # quantizer it was read with; the weights are plain tensors by now, so drop that bookkeeping.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    parameters = sum(p.numel() for p in model.parameters())
    # Small models keep full fp32 fidelity; big ones are stored in bf16 to halve the disk they use.
    if parameters > 1_000_000_000:
        model = model.to(torch.bfloat16)
    _say(progress, "Saving as a Hugging Face folder...", 0.75)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model folder should read like any other
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        info = {"name": display_name, "source": source, "gguf": str(gguf_path), "parameters": parameters}
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        from engine import download

        problem = download.disk_problem(exc, f"the converted {display_name}", folder.parent)
        if problem is not None:  # a full disk or a folder we may not write: say which, and what to do
            raise ModelError(str(problem)) from exc
        raise
    _say(progress, "Model ready.", 1.0)
    return folder


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def import_gguf(gguf_path: str | Path, progress: Optional[Progress] = None) -> Path:
    """Import a user's GGUF file once; importing the same file again reuses the folder."""
    gguf_path = Path(gguf_path).expanduser().resolve()
    if not gguf_path.is_file():
        raise ModelError(f"{gguf_path}: no such file. Choose a .gguf model file.")
    stat = gguf_path.stat()
    digest = hashlib.sha1(f"{gguf_path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:8]
    folder = paths.models_dir() / f"{_slug(gguf_path.stem)}-{digest}"
    if _is_complete(folder):
        return folder
    return convert_gguf(gguf_path, folder, display_name=gguf_path.stem, source="gguf", progress=progress)


def _looks_like_hub_id(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec)) and not os.path.exists(spec)


def download_hub_model(repo_id: str, progress: Optional[Progress] = None) -> Path:
    """Download a model from the Hugging Face hub into the models folder (needs internet)."""
    from huggingface_hub import snapshot_download

    folder = paths.models_dir() / _slug(repo_id.replace("/", "--"))
    if _is_complete(folder):
        return folder
    _say(progress, f"Downloading {repo_id} from the Hugging Face hub...", 0.1)
    try:
        # The model's own Python files only when the run allows them to run (engine.remote_code).
        code = ["*.py"] if remote_code.is_allowed() else []
        snapshot_download(repo_id, local_dir=str(folder),
                          allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"] + code)
    except Exception as exc:
        raise ModelError(f"Could not download '{repo_id}' from the Hugging Face hub ({type(exc).__name__}). "
                         "Check the internet connection and the model id, or choose a local folder or "
                         "GGUF file instead.") from exc
    if not _is_hf_folder(folder):
        raise ModelError(f"'{repo_id}' downloaded but holds no config.json; it is not a transformers model.")
    info = {"name": repo_id, "source": "hub", "parameters": _parameter_count(folder)}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder


def resolve_model(spec: str, progress: Optional[Progress] = None) -> Path:
    """Turn what the user chose into a Hugging Face folder on disk.

    spec: 'starter' (or empty), a local folder, a .gguf file, or a hub id such as 'org/name'.
    """
    spec = (spec or "starter").strip()
    if spec.lower() in ("starter", STARTER_NAME.lower(), STARTER_FOLDER):
        return prepare_starter(progress)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return import_gguf(path, progress)
    if path.is_dir():
        if _is_hf_folder(path):
            return path.resolve()
        raise ModelError(f"{path}: this folder has no config.json, so it is not a Hugging Face model folder. "
                         "Choose the folder that holds config.json and the .safetensors files.")
    named = paths.models_dir() / spec
    if _is_hf_folder(named):
        return named
    if _looks_like_hub_id(spec):
        return download_hub_model(spec, progress)
    raise ModelError(f"'{spec}' is not a model Tunesmith knows: give 'starter', a model folder, a .gguf file, "
                     "or a hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'.")


def describe(folder: Path, source: str = "local") -> ModelInfo:
    folder = Path(folder)
    info = {}
    if (folder / INFO_FILE).is_file():
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    from engine.model_facts import facts

    info.setdefault("source", source)
    return ModelInfo(name=info.get("name", folder.name), path=str(folder),
                     parameters=int(info.get("parameters") or _parameter_count(folder)),
                     size_bytes=_folder_size(folder), source=info["source"], **facts(folder, info))


def list_models(extra_folders: tuple[str, ...] = ()) -> list[ModelInfo]:
    """Models ready to train: the starter (if prepared), imported ones, and any extra local folders."""
    found = []
    for folder in sorted(paths.models_dir().iterdir()):
        if _is_complete(folder):
            found.append(describe(folder))
    for extra in extra_folders:
        if _is_hf_folder(Path(extra)):
            found.append(describe(Path(extra), source="local"))
    found.sort(key=lambda m: (m.source != "starter", m.name.lower()))
    return found
