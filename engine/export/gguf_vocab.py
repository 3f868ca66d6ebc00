"""The tokenizer, as llama.cpp wants it in a GGUF file's metadata.

Only byte-level BPE tokenizers (GPT-2 style, as SmolLM2, Llama 3 and Qwen use) are written:
the token list in id order, the merges, a type per token, the special token ids, whether BOS/EOS
are added, the pre-tokenizer name llama.cpp uses to split text before BPE, and the chat template.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from engine.export.errors import ExportError

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5  # gguf.TokenType values


@dataclass
class GGUFVocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int]  # bos / eos / unk / pad -> id
    add_bos: bool
    add_eos: bool
    chat_template: Optional[str]
    notices: list[str] = field(default_factory=list)


def _pre_tokenizer_names() -> dict[str, str]:
    """Split regex -> llama.cpp pre-tokenizer name, from the table transformers reads GGUF files with.

    Using the reader's own table means a file we write is split the same way when read back.
    """
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:  # an older transformers: only the GPT-2 style splits below are recognised
        return {}
    names: dict[str, str] = {}
    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        names.setdefault(regex, name)
    return names


def _flatten(node: Optional[dict]) -> list[dict]:
    if not node:
        return []
    if node.get("type") == "Sequence":
        return [inner for child in node.get("pretokenizers", []) for inner in _flatten(child)]
    return [node]


def pre_tokenizer_name(pre_tokenizer: Optional[dict]) -> tuple[str, Optional[str]]:
    """(llama.cpp pre-tokenizer name, notice or None) for a tokenizer.json `pre_tokenizer` entry."""
    steps = _flatten(pre_tokenizer)
    kinds = [step.get("type") for step in steps]
    byte_level = steps[-1] if kinds and kinds[-1] == "ByteLevel" else None
    if byte_level is not None and byte_level.get("use_regex", True):
        if kinds == ["ByteLevel"]:
            return "gpt-2", None
        if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
            return "smollm", None  # digits one by one, then the GPT-2 split: llama.cpp's 'smollm'
    if kinds == ["Split", "ByteLevel"]:
        regex = steps[0].get("pattern", {}).get("Regex")
        name = _pre_tokenizer_names().get(regex)
        if name:
            return name, None
    return "gpt-2", ("The tokenizer splits text in a way llama.cpp has no name for; the GGUF file uses the "
                     "GPT-2 split, so numbers and punctuation may be cut into tokens slightly differently "
                     "in llama.cpp, LM Studio and Ollama.")


def reader_rebuilds_split(pre: str) -> bool:
    """Whether transformers' GGUF reader splits text like `pre` (it knows GPT-2 and its own table)."""
    return pre == "gpt-2" or pre in _pre_tokenizer_names().values()


def _is_byte_level(data: dict) -> bool:
    steps = _flatten(data.get("pre_tokenizer"))
    return any(step.get("type") == "ByteLevel" for step in steps) or \
        (data.get("decoder") or {}).get("type") == "ByteLevel"


def _adds(tokenizer, token_id: Optional[int], at_start: bool) -> bool:
    """Whether the tokenizer puts `token_id` at the start (or end) of plain text by itself."""
    if token_id is None:
        return False
    with_special = tokenizer("hello", add_special_tokens=True)["input_ids"]
    without = tokenizer("hello", add_special_tokens=False)["input_ids"]
    if len(with_special) <= len(without):
        return False
    return (with_special[0] if at_start else with_special[-1]) == token_id


def read_vocab(tokenizer_dir: Path, vocab_size: int) -> GGUFVocab:
    """Build the GGUF vocabulary for a model whose embedding has `vocab_size` rows."""
    from transformers import AutoTokenizer

    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{tokenizer_dir}: no tokenizer.json. GGUF export needs a fast (tokenizers) "
                          "tokenizer; export as 'merged' instead.")
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not _is_byte_level(data):
        raise ExportError("GGUF export supports byte-level BPE tokenizers (GPT-2 style, as SmolLM2, Llama 3 "
                          f"and Qwen use); this model's tokenizer is {model.get('type', 'unknown')} without "
                          "byte-level encoding. Export as 'merged' and convert it with llama.cpp's "
                          "convert_hf_to_gguf.py instead.")
    by_id: dict[int, tuple[str, int]] = {i: (t, TOKEN_NORMAL) for t, i in model["vocab"].items()}
    for added in data.get("added_tokens", []):
        kind = TOKEN_CONTROL if added.get("special") else TOKEN_USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    too_big = [i for i in by_id if i >= vocab_size]
    if too_big:
        raise ExportError(f"The tokenizer has token id {max(too_big)} but the model has only {vocab_size} "
                          "embedding rows; the run's tokenizer does not belong to this model.")
    tokens, types = [], []
    for i in range(vocab_size):
        # Embedding rows no token uses (vocabularies padded to a round size) get placeholder names.
        token, kind = by_id.get(i, (f"[PAD{i}]", TOKEN_UNUSED))
        tokens.append(token)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    special = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id,
               "unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id}
    pre, notice = pre_tokenizer_name(data.get("pre_tokenizer"))
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return GGUFVocab(tokens=tokens, token_types=types, merges=merges, pre=pre,
                     special_ids={k: v for k, v in special.items() if v is not None},
                     add_bos=_adds(tokenizer, tokenizer.bos_token_id, at_start=True),
                     add_eos=_adds(tokenizer, tokenizer.eos_token_id, at_start=False),
                     chat_template=template, notices=[notice] if notice else [])


def add_vocab(writer, vocab: GGUFVocab) -> None:
    """Write the vocabulary keys (tokenizer.ggml.* and tokenizer.chat_template) with a GGUFWriter."""
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
              "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id}
    for kind, token_id in vocab.special_ids.items():
        adders[kind](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
