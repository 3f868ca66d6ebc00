"""Chat templates: which tokens are learned, for the model's own template and every built-in one."""
from __future__ import annotations

import pytest

from engine.data.errors import DataError
from engine.data.formats import Example
from engine.templates import (BUILTIN_TEMPLATES, IGNORE_INDEX, NOTHING_LEFT, format_mismatch_warning,
                              has_own_template, load_tokenizer, prompt_ids, render, template_name)

TWO_TURNS = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "The answer is 4."},
    {"role": "user", "content": "And the capital of France?"},
    {"role": "assistant", "content": "Paris."},
]


def trained_runs(rendered) -> list[str]:
    """The texts of consecutive learned tokens, e.g. ['The answer is 4.<|im_end|>', 'Paris.<|im_end|>']."""
    runs, current = [], None
    for piece in rendered.pieces():
        if piece["trained"]:
            current = (current or "") + piece["text"]
        elif current is not None:
            runs.append(current)
            current = None
    if current is not None:
        runs.append(current)
    return runs


def masked_text(rendered) -> str:
    return "".join(p["text"] for p in rendered.pieces() if not p["trained"])


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def test_own_template_learns_answers_and_end_of_turn_only(chat_tokenizer):
    rendered = render(Example(row=1, messages=TWO_TURNS), chat_tokenizer, max_length=512)
    assert template_name(chat_tokenizer) == "model" and has_own_template(chat_tokenizer)
    assert trained_runs(rendered) == ["The answer is 4.<|im_end|>", "Paris.<|im_end|>"]
    masked = masked_text(rendered)
    assert "What is 2+2?" in masked and "<|im_start|>assistant\n" in masked
    # The pieces are exactly the rendered text, token by token, and labels mirror the marks.
    assert "".join(p["text"] for p in rendered.pieces()) == rendered.text
    assert chat_tokenizer.decode(rendered.input_ids) == rendered.text
    for piece, token, label in zip(rendered.pieces(), rendered.input_ids, rendered.labels):
        assert label == (token if piece["trained"] else IGNORE_INDEX)
    assert not rendered.truncated and rendered.full_length == len(rendered.input_ids)


def test_train_on_prompt_learns_everything(chat_tokenizer):
    rendered = render(Example(row=1, messages=TWO_TURNS), chat_tokenizer, max_length=512, train_on_prompt=True)
    assert rendered.labels == rendered.input_ids


def test_plain_text_learns_every_token_and_eos(chat_tokenizer):
    rendered = render(Example(row=3, text="The quick brown fox."), chat_tokenizer, max_length=512)
    assert rendered.labels == rendered.input_ids
    assert rendered.input_ids[-1] == chat_tokenizer.eos_token_id
    assert rendered.text == "The quick brown fox.<|im_end|>"


def test_prompt_ids_are_the_training_prefix(chat_tokenizer):
    """Generation starts from exactly the tokens training put before the answer."""
    messages = TWO_TURNS[:2]
    rendered = render(Example(row=1, messages=messages), chat_tokenizer, max_length=512)
    prompt = prompt_ids(messages[:1], chat_tokenizer)
    assert rendered.input_ids[:len(prompt)] == prompt
    assert all(label == IGNORE_INDEX for label in rendered.labels[:len(prompt)])
    assert rendered.labels[len(prompt)] != IGNORE_INDEX


def test_truncation_keeps_the_start_and_rejects_when_nothing_is_left(chat_tokenizer):
    example = Example(row=7, messages=TWO_TURNS[:2])
    full = render(example, chat_tokenizer, max_length=512)
    prompt_length = len(prompt_ids(TWO_TURNS[:1], chat_tokenizer))
    cut = render(example, chat_tokenizer, max_length=prompt_length + 2)
    assert cut.truncated and cut.input_ids == full.input_ids[:prompt_length + 2]
    assert cut.full_length == len(full.input_ids) and cut.rejection is None
    assert len(cut.pieces()) == prompt_length + 2
    nothing = render(example, chat_tokenizer, max_length=prompt_length)
    assert nothing.truncated and nothing.rejection == NOTHING_LEFT


@pytest.mark.parametrize("name,end_of_turn", [
    ("chatml", "<|im_end|>"),            # the tiny model's EOS is <|im_end|>: no extra EOS
    ("alpaca", "<|im_end|>"),
    ("llama3", "<|eot_id|><|im_end|>"),  # its own marker, then the tokenizer's EOS so generation stops
    ("plain", "<|im_end|>"),
])
def test_builtin_templates_mark_every_answer(tiny_model_dir, name, end_of_turn):
    tokenizer = load_tokenizer(tiny_model_dir, template=name)
    assert tokenizer.chat_template == BUILTIN_TEMPLATES[name] and template_name(tokenizer) == name
    rendered = render(Example(row=1, messages=TWO_TURNS), tokenizer, max_length=1024)
    # A BPE token may straddle the start of an answer (e.g. "\n\nThe"); the answer text must be inside.
    runs = [run.lstrip() for run in trained_runs(rendered)]
    assert runs == ["The answer is 4." + end_of_turn, "Paris." + end_of_turn]
    prompt = prompt_ids(TWO_TURNS[:1], tokenizer)
    assert tokenizer.decode(prompt).endswith(
        {"chatml": "<|im_start|>assistant\n", "alpaca": "### Response:\n",
         "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n", "plain": "What is 2+2?\n"}[name])


def test_system_message_stays_masked(chat_tokenizer):
    messages = [{"role": "system", "content": "Answer briefly."}] + TWO_TURNS[:2]
    rendered = render(Example(row=1, messages=messages), chat_tokenizer, max_length=512)
    assert "Answer briefly." in masked_text(rendered)
    assert trained_runs(rendered) == ["The answer is 4.<|im_end|>"]


def test_template_that_rewrites_earlier_turns_still_marks_answers(tiny_model_dir):
    """A template whose output for a prefix is not a prefix of the full output (it counts the turns)."""
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = (
        "{{ 'turns: ' + (messages|length|string) + '\n' }}"
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    rendered = render(Example(row=1, messages=TWO_TURNS), tokenizer, max_length=512)
    assert [run.lstrip() for run in trained_runs(rendered)] == ["The answer is 4.<|im_end|>", "Paris.<|im_end|>"]


def test_an_answer_that_also_appears_in_the_prompt_is_learned_only_where_the_assistant_says_it(tiny_model_dir):
    """The same rewriting template; the answer "Yes" is in the user's question too, and earlier turns exist."""
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = (
        "{{ 'turns: ' + (messages|length|string) + '\n' }}"
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    messages = [{"role": "user", "content": "Is water wet? Answer Yes or No."},
                {"role": "assistant", "content": "Yes"},
                {"role": "user", "content": "Say Yes if Paris is in France."},
                {"role": "assistant", "content": "Yes"}]
    rendered = render(Example(row=1, messages=messages), tokenizer, max_length=512)
    assert [run.strip() for run in trained_runs(rendered)] == ["Yes<|im_end|>", "Yes<|im_end|>"]
    masked = masked_text(rendered)
    assert "Answer Yes or No." in masked and "Say Yes if Paris" in masked


def test_template_refusing_a_conversation_is_a_data_error(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = ("{% if messages[0]['role'] == 'system' %}"
                               "{{ raise_exception('System role not supported') }}{% endif %}"
                               "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    messages = [{"role": "system", "content": "Be nice."}] + TWO_TURNS[:2]
    with pytest.raises(DataError, match=r"row 5: the chat template refuses .*System role not supported"):
        render(Example(row=5, messages=messages), tokenizer, max_length=512)


def test_base_model_falls_back_to_builtin_and_warns_for_chat_data(tiny_base_model_dir, tiny_model_dir):
    base = load_tokenizer(tiny_base_model_dir)
    assert not has_own_template(base) and template_name(base) == "chatml"
    assert "base model without a chat template" in format_mismatch_warning(base, "sharegpt")
    assert format_mismatch_warning(base, "text") is None
    chat = load_tokenizer(tiny_model_dir)
    assert format_mismatch_warning(chat, "alpaca") is None
    assert "continue text" in format_mismatch_warning(chat, "text")


def test_unknown_template_name_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="chatml"):
        load_tokenizer(tiny_model_dir, template="vicuna")


def test_starter_model_template_masks_system_and_prompt(starter_model_dir):
    """The real SmolLM2 template: default system prompt and question masked, answer + <|im_end|> learned."""
    tokenizer = load_tokenizer(starter_model_dir)
    assert template_name(tokenizer) == "model"
    example = Example(row=1, messages=[{"role": "user", "content": "Describe crepes.\n\nBriefly."},
                                       {"role": "assistant", "content": "Thin French pancakes."}])
    rendered = render(example, tokenizer, max_length=512)
    assert trained_runs(rendered) == ["Thin French pancakes.<|im_end|>"]
    masked = masked_text(rendered)
    assert masked.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<|im_start|>user\nDescribe crepes.\n\nBriefly.<|im_end|>\n<|im_start|>assistant\n" in masked
    prompt = prompt_ids(example.messages[:1], tokenizer)
    assert rendered.input_ids[:len(prompt)] == prompt
