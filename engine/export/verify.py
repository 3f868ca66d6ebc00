"""Checking a written GGUF file the way another program will see it.

The file is read back with transformers' own GGUF loader (an implementation independent of the
writer), completed with the metadata that loader does not map, read from the file itself; on a few
fixed chat prompts the read-back model's next-token logits are compared with
the merged model's; the tokenizer it rebuilds must encode the prompts to the same ids, and the
chat template must come back unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from engine.export.errors import ExportError

# Largest allowed difference of next-token logits, relative to the largest reference logit.
# f16 rounds each weight to 11 significant bits; q8_0 to 8 bits with a scale per 32 values.
GGUF_TOLERANCES = {"gguf-f16": 0.01, "gguf-q8_0": 0.08}

VERIFY_CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Give three tips for staying healthy."}],
    [{"role": "user", "content": "Reverse the word: cat"}, {"role": "assistant", "content": "tac"},
     {"role": "user", "content": "And dog? 123 + 456 = ?"}],
]


_TOKENS_WORDS = {True: "identical", False: "DIFFERENT", None: "not compared (the reader cannot rebuild its split)"}


@dataclass(frozen=True)
class VerifyResult:
    """How closely the GGUF file reproduces the merged model, read by transformers and, where installed, llama.cpp."""

    target: str
    max_abs_diff: float  # largest |logit difference| over all prompts and vocabulary entries
    relative_diff: float  # max_abs_diff / largest |reference logit|
    tolerance: float
    top1_agreement: float  # share of prompts whose most likely next token is the same
    tokens_match: Optional[bool]  # the GGUF tokenizer encodes every prompt to the training ids (None: not compared)
    template_match: bool  # the chat template in the file equals the training one
    llama_cpp_relative_diff: Optional[float] = None  # the same comparison run by llama.cpp (None: not installed)
    llama_cpp_top1_agreement: Optional[float] = None
    llama_cpp_tokens_match: Optional[bool] = None

    @property
    def passed(self) -> bool:
        llama_cpp_ok = (self.llama_cpp_relative_diff is None
                        or (self.llama_cpp_relative_diff <= self.tolerance and self.llama_cpp_tokens_match is not False))
        return (self.relative_diff <= self.tolerance and self.tokens_match is not False and self.template_match
                and llama_cpp_ok)

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        text = (f"{self.target}: logits within {self.relative_diff:.2%} of the merged model "
                f"(allowed {self.tolerance:.0%}), same top token on {self.top1_agreement:.0%} of prompts, "
                f"tokenizer {_TOKENS_WORDS[self.tokens_match]}, chat template "
                f"{'identical' if self.template_match else 'DIFFERENT'}")
        if self.llama_cpp_relative_diff is None:
            return text + "; llama.cpp itself not installed, so not run (optional: pip install tunesmith[llamacpp])"
        return (text + f"; llama.cpp: logits within {self.llama_cpp_relative_diff:.2%}, same top token on "
                f"{self.llama_cpp_top1_agreement:.0%}, tokenizer "
                f"{'identical' if self.llama_cpp_tokens_match else 'DIFFERENT'}")


def _compare(expected: list, got: list) -> tuple[float, float, float]:
    """(largest |difference|, that relative to the largest |reference logit|, share of equal top tokens)."""
    import numpy as np

    largest_diff = max(float(np.abs(e - g).max()) for e, g in zip(expected, got))
    largest_ref = max(float(np.abs(e).max()) for e in expected)
    same_top = sum(int(e.argmax() == g.argmax()) for e, g in zip(expected, got)) / len(expected)
    return largest_diff, largest_diff / max(largest_ref, 1e-12), same_top


def verify_gguf(gguf_path: Path, reference_model, tokenizer, target: str, *,
                compare_tokenizer: bool = True) -> VerifyResult:
    """Compare the GGUF file at `gguf_path` with `reference_model` (the merged model in memory).

    `tokenizer` is the training tokenizer (with its chat template). `compare_tokenizer=False` skips
    the transformers encoding check, for pre-tokenizers transformers' GGUF reader cannot rebuild (it
    falls back to the GPT-2 split there, which would be the reader's error, not the file's).
    """
    import torch
    from transformers import AutoTokenizer

    from engine.export import verify_llamacpp

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        read_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        read_model = read_back_model(gguf_path)
    except Exception as exc:  # any failure to read our own file is a bug in the writer, not the user's
        raise ExportError(f"The GGUF file just written could not be read back ({type(exc).__name__}: {exc}). "
                          "This is a Tunesmith bug; please report it with the run folder.") from exc
    reference_model.eval()
    prompts = [_prompt(messages, tokenizer) for messages in VERIFY_CONVERSATIONS]
    texts = []
    for ids in prompts:
        text = tokenizer.decode(ids)
        texts.append((text, tokenizer(text, add_special_tokens=False)["input_ids"]))
    tokens_match = all(read_tokenizer(text, add_special_tokens=False)["input_ids"] == ids for text, ids in texts)
    with torch.no_grad():
        expected = [reference_model(torch.tensor([ids])).logits[0, -1].float().numpy() for ids in prompts]
        got = [read_model(torch.tensor([ids])).logits[0, -1].float().numpy() for ids in prompts]
    largest_diff, relative, same_top = _compare(expected, got)
    result = VerifyResult(target=target, max_abs_diff=largest_diff, relative_diff=relative,
                          tolerance=GGUF_TOLERANCES[target], top1_agreement=same_top,
                          tokens_match=tokens_match if compare_tokenizer else None,
                          template_match=(read_tokenizer.chat_template or None) == (tokenizer.chat_template or None))
    llama_cpp = verify_llamacpp.run_prompts(gguf_path, prompts, texts)
    if llama_cpp is None:
        return result
    _, cpp_relative, cpp_top = _compare(expected, llama_cpp.logits)
    return replace(result, llama_cpp_relative_diff=cpp_relative, llama_cpp_top1_agreement=cpp_top,
                   llama_cpp_tokens_match=llama_cpp.tokens_match)


def _prompt(messages: list[dict], tokenizer) -> list[int]:
    """The ids generation would start from: the training chat layout, or the bare text without one.

    Templates that refuse a system message (Gemma's) get the conversation without it.
    """
    from jinja2 import TemplateError

    from engine.templates import prompt_ids

    if not tokenizer.chat_template:
        return tokenizer(messages[-1]["content"])["input_ids"]
    try:
        return prompt_ids(messages, tokenizer)
    except TemplateError:
        return prompt_ids([m for m in messages if m["role"] != "system"], tokenizer)


def file_metadata(gguf_path: Path) -> tuple[dict, dict]:
    """(key -> value, tensor name -> numpy array) of a GGUF file, read with gguf-py (tokenizer lists left out)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    fields = {key: field.contents() for key, field in reader.fields.items()
              if not key.startswith("tokenizer.ggml.") or not field.data or len(field.data) == 1}
    return fields, {tensor.name: tensor.data for tensor in reader.tensors}


def _completed_config(config, fields: dict) -> None:
    """Set what transformers' GGUF reader leaves at its defaults from the file's own metadata, as llama.cpp reads it.

    The reader maps the common keys only; for Qwen3's head size, Gemma's soft-caps, query scaling,
    sliding-window pattern and local rope base it would fall back to the defaults of the largest model.
    """
    arch = fields["general.architecture"]
    key = lambda name: fields.get(f"{arch}.{name}")  # noqa: E731
    if key("attention.key_length") is not None:
        config.head_dim = int(key("attention.key_length"))
    if arch in ("gemma2", "gemma3"):
        config.attn_logit_softcapping = key("attn_logit_softcapping")
        config.final_logit_softcapping = key("final_logit_softcapping")
        config.query_pre_attn_scalar = config.head_dim  # llama.cpp's scaling: 1/sqrt(head size)
        pattern = key("attention.sliding_window_pattern")
        if isinstance(pattern, list):
            config.layer_types = ["sliding_attention" if sliding else "full_attention" for sliding in pattern]
    if arch == "gemma3":
        full = {"rope_type": "default", "rope_theta": float(key("rope.freq_base"))}
        local = {"rope_type": "default", "rope_theta": float(key("rope.freq_base_swa") or full["rope_theta"])}
        config.rope_parameters = {"full_attention": full, "sliding_attention": local}


def read_back_model(gguf_path: Path):
    """The model in a GGUF file, as transformers' GGUF reader builds it, completed from the file's metadata.

    Besides the keys (see _completed_config), a `rope_freqs` tensor (Llama 3 frequency scaling) is
    applied to the rotary embedding the way llama.cpp applies it: each frequency divided by its entry.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    fields, tensors = file_metadata(gguf_path)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    _completed_config(config, fields)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, config=config, dtype=torch.float32)
    divisors = tensors.get("rope_freqs.weight")
    if divisors is not None:
        for module in model.modules():
            if hasattr(module, "inv_freq"):
                module.inv_freq = module.inv_freq / torch.as_tensor(divisors.copy(), dtype=module.inv_freq.dtype)
                module.original_inv_freq = module.inv_freq
    return model.eval()
