"""Tiny randomly initialised models of the families people fine-tune, built offline in a second each.

Each is made from the family's own transformers configuration class (2 layers, width 64), with a
small byte-level BPE tokenizer carrying the family's special tokens and, where the family has one,
a chat template shaped like the family's own (Llama 3 headers, ChatML, Gemma turns, Mistral [INST],
Phi-3 tags). Features that a fast path could silently ignore are switched on at a size the tests'
short examples reach: Mistral and Gemma 3 slide a window of 4 tokens, Gemma 2 soft-caps attention
scores and final logits at values that change a random model's numbers. Weights are drawn wider than
transformers' default (std 0.2, not 0.02), so attention is peaked as in a trained model and leaving
out a window or a cap moves the loss by percents, not by rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.tiny_model import build_tokenizer

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN2_TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are Qwen, a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Qwen3 without thinking: every answer sits after an empty <think></think> block.
QWEN3_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n<think>\n\n</think>\n\n' + m['content'] + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n\n</think>\n\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    config_class: str  # the transformers configuration class
    specials: tuple[str, ...]
    bos: str
    eos: str
    pad: str
    template: Optional[str]
    settings: dict = field(default_factory=dict)  # beyond the shared tiny sizes


FAMILIES: dict[str, Family] = {
    "llama": Family("LlamaConfig", ("<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
                    "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", LLAMA3_TEMPLATE, {"tie_word_embeddings": False}),
    "qwen2": Family("Qwen2Config", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), "<|im_start|>", "<|im_end|>",
                    "<|endoftext|>", QWEN2_TEMPLATE, {"tie_word_embeddings": True}),
    "qwen3": Family("Qwen3Config", ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"),
                    "<|im_start|>", "<|im_end|>", "<|endoftext|>", QWEN3_TEMPLATE, {"tie_word_embeddings": True}),
    "gemma2": Family("Gemma2Config", ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                     "<bos>", "<end_of_turn>", "<pad>", GEMMA_TEMPLATE,
                     {"sliding_window": 4, "attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.1,
                      "query_pre_attn_scalar": 16}),
    "gemma3": Family("Gemma3TextConfig", ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                     "<bos>", "<end_of_turn>", "<pad>", GEMMA_TEMPLATE,
                     {"sliding_window": 4, "query_pre_attn_scalar": 16,
                      "layer_types": ["sliding_attention", "full_attention"]}),
    "mistral": Family("MistralConfig", ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), "<s>", "</s>", "</s>",
                      MISTRAL_TEMPLATE, {"sliding_window": 4, "tie_word_embeddings": False}),
    "phi3": Family("Phi3Config", ("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
                   "<|endoftext|>", "<|end|>", "<|endoftext|>", PHI3_TEMPLATE, {"tie_word_embeddings": False}),
    # Not Llama-like in its module names (query_key_value, dense_h_to_4h, embed_out) and a base model
    # without a chat template: LoRA target detection and the built-in template are exercised.
    "gpt_neox": Family("GPTNeoXConfig", ("<|endoftext|>", "<|padding|>"), "<|endoftext|>", "<|endoftext|>",
                       "<|padding|>", None, {"tie_word_embeddings": False}),
}


def family_config(name: str, vocab_size: int, token_ids: dict[str, int], *, layers: int = 2, hidden: int = 64,
                  overrides: Optional[dict] = None):
    """The configuration object of a tiny `name` model; `overrides` replace any of its settings."""
    import transformers

    family = FAMILIES[name]
    sizes = {"vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": hidden * 2,
             "num_hidden_layers": layers, "num_attention_heads": 4, "max_position_embeddings": 1024,
             "initializer_range": 0.2}
    if name == "gpt_neox":
        sizes.update(rotary_pct=0.5, use_parallel_residual=True)
    else:
        sizes.update(num_key_value_heads=2, head_dim=hidden // 4)
    if name == "phi3":
        sizes.pop("head_dim")
    config_class = getattr(transformers, family.config_class)
    return config_class(**(sizes | family.settings | token_ids | (overrides or {})))


def build_family_model(name: str, folder: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                       overrides: Optional[dict] = None) -> Path:
    """Write a tiny random `name` model (see FAMILIES) and its tokenizer to `folder`; returns it."""
    import torch
    from transformers import AutoModelForCausalLM

    family = FAMILIES[name]
    unk = "<unk>" if "<unk>" in family.specials else family.specials[0]
    tokenizer = build_tokenizer(special_tokens=list(family.specials), bos=family.bos, eos=family.eos,
                                pad=family.pad, unk=unk, chat_template=family.template)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = family_config(name, len(tokenizer), ids, layers=layers, hidden=hidden, overrides=overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def family_examples(tokenizer, max_length: int, count: int = 5) -> list:
    """A few short conversations of different lengths, rendered with the model's template (engine.templates)."""
    from engine.data.formats import Example
    from engine.templates import render

    questions = ["What is the capital of France?", "Reverse the word: cat", "Give three tips for staying healthy.",
                 "Translate to French: hello", "What is 2 + 3?"]
    answers = ["Paris.", "tac", "Sleep, eat well, walk.", "bonjour", "The answer is 5, because 2 + 3 = 5."]
    examples = []
    for i in range(count):
        messages = [{"role": "user", "content": questions[i % 5]}, {"role": "assistant", "content": answers[i % 5]}]
        rendered = render(Example(row=i + 1, messages=messages), tokenizer, max_length=max_length)
        assert rendered.rejection is None, rendered.rejection
        examples.append(rendered)
    return examples
