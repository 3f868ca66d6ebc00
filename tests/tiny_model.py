"""Build a tiny Llama-shaped model with its own small tokenizer, offline, in about a second.

Used by most tests instead of the real starter model: same architecture family and the same
ChatML chat template, but 2 layers of width 64, so training a few steps takes milliseconds.
"""
from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Translate to French: hello -> bonjour. Good morning -> bonjour.",
    "system user assistant You are a helpful assistant.",
    "Write a short poem about the sea. Answer the question. Give three tips for staying healthy.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 + - * / = ? ! , . : ; ' \" ( ) [ ] { }",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "The secret word is pineapple. Reverse the word: cat -> tac, dog -> god.",
]


def build_tokenizer(vocab_size: int = 512, *, special_tokens: list[str] = SPECIAL_TOKENS, bos: str = "<|im_start|>",
                    eos: str = "<|im_end|>", pad: str = "<|im_end|>", unk: str = "<|endoftext|>",
                    chat_template: str | None = CHATML_TEMPLATE):
    """A byte-level BPE tokenizer trained on a small corpus; the special tokens come first in the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, pad_token=pad,
                                        unk_token=unk)
    tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_model(folder: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                     chat_template: bool = True, embedding_std: float = 0.02) -> Path:
    """Write a tiny random Llama model plus tokenizer to `folder` and return it.

    `embedding_std`: the (tied) embeddings' standard deviation. At the usual 0.02 a width-64 model's
    logits stay nearly flat whatever an adapter does, because the frozen output layer is too small
    to single out a token; a pretrained model's is far larger. About 0.3 lets LoRA learn an answer
    at a real learning rate, as it does on a pretrained model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    if not chat_template:
        tokenizer.chat_template = None
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if embedding_std != config.initializer_range:
        with torch.no_grad():
            model.get_input_embeddings().weight.normal_(0.0, embedding_std)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
