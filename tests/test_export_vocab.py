"""The GGUF vocabulary: llama.cpp's pre-tokenizer names, placeholder rows, and refused tokenizers."""
from __future__ import annotations

import pytest

from engine.export import ExportError
from engine.export.gguf_vocab import TOKEN_CONTROL, TOKEN_UNUSED, pre_tokenizer_name, read_vocab

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def test_pre_tokenizer_names():
    assert pre_tokenizer_name(BYTE_LEVEL) == ("gpt-2", None)
    digits_first = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]}
    assert pre_tokenizer_name(digits_first) == ("smollm", None)
    name, notice = pre_tokenizer_name({"type": "Whitespace"})
    assert name == "gpt-2" and "differently" in notice


def test_padded_embedding_rows_get_unused_placeholders(tmp_path):
    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path)

    vocab = read_vocab(tmp_path, len(tokenizer) + 3)

    assert vocab.tokens[-3:] == [f"[PAD{len(tokenizer) + i}]" for i in range(3)]
    assert vocab.token_types[-1] == TOKEN_UNUSED
    assert vocab.token_types[tokenizer.convert_tokens_to_ids("<|im_end|>")] == TOKEN_CONTROL
    assert vocab.special_ids["eos"] == tokenizer.eos_token_id and vocab.add_bos is False
    with pytest.raises(ExportError, match="does not belong to this model"):
        read_vocab(tmp_path, len(tokenizer) - 1)


def test_tokenizer_that_is_not_byte_level_bpe_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]").save_pretrained(tmp_path)

    with pytest.raises(ExportError, match="byte-level BPE"):
        read_vocab(tmp_path, 2)
