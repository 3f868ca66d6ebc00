"""Checking a written GGUF file the way another program will see it.

The file is read back with transformers' own GGUF loader (an implementation independent of the
writer), and on a few fixed chat prompts the read-back model's next-token logits are compared with
the merged model's; the tokenizer it rebuilds must encode the prompts to the same ids, and the
chat template must come back unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
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
    """How closely the GGUF file reproduces the merged model."""

    target: str
    max_abs_diff: float  # largest |logit difference| over all prompts and vocabulary entries
    relative_diff: float  # max_abs_diff / largest |reference logit|
    tolerance: float
    top1_agreement: float  # share of prompts whose most likely next token is the same
    tokens_match: Optional[bool]  # the GGUF tokenizer encodes every prompt to the training ids (None: not compared)
    template_match: bool  # the chat template in the file equals the training one

    @property
    def passed(self) -> bool:
        return self.relative_diff <= self.tolerance and self.tokens_match is not False and self.template_match

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        return (f"{self.target}: logits within {self.relative_diff:.2%} of the merged model "
                f"(allowed {self.tolerance:.0%}), same top token on {self.top1_agreement:.0%} of prompts, "
                f"tokenizer {_TOKENS_WORDS[self.tokens_match]}, chat template "
                f"{'identical' if self.template_match else 'DIFFERENT'}")


def verify_gguf(gguf_path: Path, reference_model, tokenizer, target: str, *,
                compare_tokenizer: bool = True) -> VerifyResult:
    """Compare the GGUF file at `gguf_path` with `reference_model` (the merged model in memory).

    `tokenizer` is the training tokenizer (with its chat template). `compare_tokenizer=False` skips
    the encoding check, for pre-tokenizers transformers' GGUF reader cannot rebuild (it falls back
    to the GPT-2 split there, which would be the reader's error, not the file's).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        read_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        read_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # any failure to read our own file is a bug in the writer, not the user's
        raise ExportError(f"The GGUF file just written could not be read back ({type(exc).__name__}: {exc}). "
                          "This is a Tunesmith bug; please report it with the run folder.") from exc
    read_model.eval()
    reference_model.eval()
    largest_diff, largest_ref, same_top, tokens_match = 0.0, 0.0, 0, True
    with torch.no_grad():
        for messages in VERIFY_CONVERSATIONS:
            ids = _prompt(messages, tokenizer)
            if compare_tokenizer:
                text = tokenizer.decode(ids)
                encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
                tokens_match = tokens_match and read_tokenizer(text, add_special_tokens=False)["input_ids"] == encoded
            batch = torch.tensor([ids])
            expected = reference_model(batch).logits[0, -1].float()
            got = read_model(batch).logits[0, -1].float()
            largest_diff = max(largest_diff, (expected - got).abs().max().item())
            largest_ref = max(largest_ref, expected.abs().max().item())
            same_top += int(expected.argmax().item() == got.argmax().item())
    return VerifyResult(target=target, max_abs_diff=largest_diff,
                        relative_diff=largest_diff / max(largest_ref, 1e-12),
                        tolerance=GGUF_TOLERANCES[target], top1_agreement=same_top / len(VERIFY_CONVERSATIONS),
                        tokens_match=tokens_match if compare_tokenizer else None,
                        template_match=(read_tokenizer.chat_template or None) == (tokenizer.chat_template or None))


def _prompt(messages: list[dict], tokenizer) -> list[int]:
    """The ids generation would start from: the training chat layout, or the bare text without one."""
    from engine.templates import prompt_ids

    if tokenizer.chat_template:
        return prompt_ids(messages, tokenizer)
    return tokenizer(messages[-1]["content"])["input_ids"]
