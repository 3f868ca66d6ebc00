"""The Ollama Modelfile: the training chat template taken apart into a Go template that lays out
conversations the same way, or a plain notice when the template does not fit that shape."""
from __future__ import annotations

import pytest

from engine.export.modelfile import modelfile_text, split_template
from engine.templates import BUILTIN_TEMPLATES, apply_template

CONVERSATION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}]


@pytest.fixture
def tokenizer():
    from tests.tiny_model import build_tokenizer

    return build_tokenizer()


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_every_builtin_template_becomes_an_equivalent_ollama_template(tokenizer, name):
    tokenizer.chat_template = BUILTIN_TEMPLATES[name]

    parts = split_template(tokenizer)
    text, notices = modelfile_text("model.gguf", tokenizer)

    assert parts.render(CONVERSATION) == apply_template(CONVERSATION, tokenizer, add_generation_prompt=True)
    assert notices == []
    assert 'TEMPLATE """' in text and "{{ range .Messages }}" in text and "{{ .Content }}" in text
    assert f'PARAMETER stop "{tokenizer.eos_token}"' in text


def test_alpaca_default_system_prompt_and_instruction_header_stop(tokenizer):
    tokenizer.chat_template = BUILTIN_TEMPLATES["alpaca"]

    text, _ = modelfile_text("model.gguf", tokenizer)

    assert 'SYSTEM """Below is an instruction that describes a task.' in text
    assert 'PARAMETER stop "### Instruction:"' in text


def test_chatml_with_different_eos_stops_on_both(tokenizer):
    tokenizer.chat_template = BUILTIN_TEMPLATES["chatml"]
    tokenizer.eos_token = "<|endoftext|>"

    text, _ = modelfile_text("model.gguf", tokenizer)

    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|endoftext|>"' in text
    assert "SYSTEM" not in text  # this template adds no default system prompt


def test_template_that_is_not_per_message_gets_a_notice_and_no_template(tokenizer):
    # Only the last user message is shown: no per-message layout reproduces that.
    tokenizer.chat_template = "{{ messages[-1]['content'] | upper }}{% if add_generation_prompt %}>>{% endif %}"

    text, notices = modelfile_text("model.gguf", tokenizer)

    assert "TEMPLATE" not in text and "FROM ./model.gguf" in text
    assert len(notices) == 1 and "Ollama" in notices[0]
