"""What both sides of the race train on: one model, one data subset, one set of hyper-parameters.

A `Workload` is a plain dataclass that travels to each side's child process as JSON, so the
engine and the baseline cannot drift apart: the same rows, maximum length, effective batch,
LoRA rank and targets, learning rate, schedule and seed.
"""
from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DEFAULT_DATA = Path("/work/shared/data/formats/alpaca_en_demo.json")
HELDOUT_ROWS = 32  # rows from the end of the file, scored by both adapters for quality parity


@dataclass
class Workload:
    """One training job, identical for both sides."""

    model_dir: str
    train_path: str  # alpaca JSON with exactly `examples` rows
    heldout_path: str  # alpaca JSON, never trained on; both adapters are scored on it
    examples: int
    method: str = "lora"  # lora | qlora
    max_length: int = 512
    batch_size: int = 8  # the effective batch: examples per optimizer step
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    lr: float = 2e-4
    warmup_ratio: float = 0.05
    scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 42
    device: str = "cpu"  # cpu | cuda
    warmup_steps_excluded: int = 1  # optimizer steps left out of the throughput window
    overrides: dict = field(default_factory=dict)  # engine --set pairs (levers); the baseline ignores them

    @property
    def steps(self) -> int:
        """Optimizer steps in one epoch (the last batch may be short)."""
        return max(1, -(-self.examples // self.batch_size))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Workload":
        return cls(**json.loads(text))

    def with_changes(self, **changes) -> "Workload":
        return dataclasses.replace(self, **changes)


def load_alpaca_rows(path: Path) -> list[dict]:
    """Read an alpaca JSON (a list of {instruction, input, output}) or JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path}: data file not found. Pass --data with an alpaca JSON file "
                         "(the default is the shared alpaca_en_demo.json).")
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                       if line.strip()]
    except ValueError as exc:
        raise SystemExit(f"{path}: not valid JSON/JSONL ({exc}).") from None
    usable = [r for r in rows if isinstance(r, dict) and r.get("instruction") and r.get("output")]
    if not usable:
        raise SystemExit(f"{path}: no row has both 'instruction' and 'output'; the race needs alpaca rows.")
    return usable


def write_subsets(source: Path, examples: int, folder: Path, heldout_rows: int = HELDOUT_ROWS) -> tuple[Path, Path]:
    """Write the first `examples` rows (repeated if the file is shorter) and a held-out slice.

    The held-out rows come from the end of the file, so they are never among the training rows
    unless the file is tiny (then a warning would be misleading; the slice is simply the tail).
    """
    rows = load_alpaca_rows(source)
    heldout = rows[-heldout_rows:] if len(rows) > heldout_rows * 2 else rows[:heldout_rows]
    pool = rows[:-heldout_rows] if len(rows) > heldout_rows * 2 else rows
    train = [pool[i % len(pool)] for i in range(examples)]
    folder.mkdir(parents=True, exist_ok=True)
    train_path, heldout_path = folder / "train.json", folder / "heldout.json"
    train_path.write_text(json.dumps(train, ensure_ascii=False), encoding="utf-8")
    heldout_path.write_text(json.dumps(heldout, ensure_ascii=False), encoding="utf-8")
    return train_path, heldout_path


_TOPICS = ["photosynthesis", "a bicycle", "the moon", "compound interest", "a haiku", "bread", "rivers",
           "volcanoes", "a job interview", "recursion", "the French revolution", "tea", "chess", "sleep"]
_VERBS = ["Explain", "Describe", "Summarise", "Give three facts about", "Write a short note on", "Compare"]


def write_synthetic_alpaca(path: Path, rows: int, seed: int = 0) -> Path:
    """A deterministic alpaca JSON of `rows` varied rows (the 100k-row inspection workload)."""
    rng = random.Random(seed)
    data = []
    for i in range(rows):
        topic, verb = rng.choice(_TOPICS), rng.choice(_VERBS)
        words = " ".join(rng.choice(_TOPICS).split()[-1] for _ in range(rng.randint(5, 60)))
        data.append({"instruction": f"{verb} {topic}.", "input": f"Context #{i}" if i % 3 == 0 else "",
                     "output": f"{topic.capitalize()} is interesting because {words}."})
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def is_skeleton(folder: Path) -> bool:
    """A model folder with config and tokenizer but no weights (small enough to carry to a lent GPU)."""
    folder = Path(folder)
    return (folder.is_dir() and (folder / "config.json").is_file()
            and not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")))


def build_random_from_skeleton(skeleton: Path, folder: Path) -> Path:
    """The skeleton's architecture with random weights, plus its tokenizer files, for speed-only runs."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(skeleton)))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for item in Path(skeleton).iterdir():
        if item.is_file() and item.name != "config.json":
            shutil.copy2(item, folder / item.name)
    return folder


def build_random_llama(folder: Path, tokenizer_dir: Optional[Path], *, hidden: int = 2048, layers: int = 16,
                       intermediate: int = 5632, heads: int = 32, kv_heads: int = 8) -> Path:
    """A randomly initialised llama-shaped model (about 1B parameters by default) for throughput runs.

    The tokenizer is copied from `tokenizer_dir` (the starter's, so the vocabulary is realistic);
    weights are random because only speed is measured on it.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
