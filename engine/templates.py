"""Chat templates and rendering: how an example becomes token ids, and which tokens are learned.

One template serves training, preview, chat, evaluation and export, so the layout the model learns
is the layout it is asked in. The template is the model's own chat template when it has one;
otherwise (or on request) one of the built-in Jinja templates below.

Which tokens are learned is decided on the rendered text, for any template: each assistant turn's
span is found by rendering the conversation up to that turn (with the assistant header) and through
it, and taking the difference; the fast tokenizer's offset mapping turns those character spans into
token labels.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from engine.data.completion import answer_start, missing_reason
from engine.data.errors import DataError
from engine.data.formats import Example

IGNORE_INDEX = -100  # the label value the loss skips
NOTHING_LEFT = "too long: nothing left to learn after truncation"
CHAT_FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference")

# Built-in templates. Each ends an assistant turn with its own end-of-turn marker and, when the
# tokenizer's end-of-sequence token is a different one, with that too: generation stops on EOS, so
# the model must learn to emit it.
BUILTIN_TEMPLATES = {
    "chatml": (
        "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
        "{%- if message['role'] == 'assistant' and eos_token and eos_token != '<|im_end|>' %}"
        "{{ eos_token }}{% endif -%}"
        "{{ '\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif -%}"
    ),
    "alpaca": (
        "{%- set ns = namespace(system='Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.') -%}"
        "{%- if messages and messages[0]['role'] == 'system' %}{% set ns.system = messages[0]['content'] %}"
        "{% endif -%}"
        "{{ ns.system + '\n\n' }}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
        "{%- elif message['role'] == 'assistant' %}"
        "{{ '### Response:\n' + message['content'] + (eos_token or '') + '\n\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '### Response:\n' }}{% endif -%}"
    ),
    "llama3": (
        "{%- for message in messages -%}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
        "{%- if message['role'] == 'assistant' and eos_token and eos_token != '<|eot_id|>' %}"
        "{{ eos_token }}{% endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif -%}"
    ),
    # No markers at all: the prompt, a newline, the answer and EOS. For base models and completion data.
    "plain": (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' %}{{ message['content'] + (eos_token or '') + '\n' }}"
        "{%- else %}{{ message['content'] + '\n' }}{% endif -%}"
        "{%- endfor -%}"
    ),
}
# What a base model without a template gets: ChatML is the most widely understood layout (llama.cpp
# and most chat front-ends recognise it after export).
FALLBACK_TEMPLATE = "chatml"
TEMPLATE_CHOICES = ("auto",) + tuple(BUILTIN_TEMPLATES)


@dataclass
class Rendered:
    """One example as it goes into training.

    `labels` equals `input_ids` where the token is learned and IGNORE_INDEX where it is masked.
    `text` is the rendered text (before truncation) and `token_ends` the end offset of each kept token
    in it, so `pieces()` can show exactly what the model sees.
    """

    input_ids: list
    labels: list
    truncated: bool
    full_length: int
    row: int = 0
    text: str = ""
    token_ends: array = field(default_factory=lambda: array("i"), repr=False)
    problem: Optional[str] = None  # why nothing can be learned from it other than length (e.g. no separator)

    @property
    def trained_tokens(self) -> int:
        """Tokens that contribute to the loss (the first token is never predicted, so it does not count)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)

    @property
    def rejection(self) -> Optional[str]:
        """Why this example cannot be used for training, or None."""
        if self.problem:
            return self.problem
        return NOTHING_LEFT if self.trained_tokens == 0 else None

    def pieces(self) -> list[dict]:
        """One {"text", "trained"} per token, special tokens shown as their text (e.g. '<|im_end|>')."""
        result, start = [], 0
        for end, label in zip(self.token_ends, self.labels):
            end = max(end, start)
            result.append({"text": self.text[start:end], "trained": label != IGNORE_INDEX})
            start = end
        return result


def load_tokenizer(model_dir: Union[str, Path], template: str = "auto"):
    """Load the model's tokenizer with the chat template used for training and generation set on it.

    template: 'auto' keeps the model's own chat template and falls back to the built-in
    FALLBACK_TEMPLATE for base models that have none; 'chatml', 'alpaca', 'llama3' or 'plain' force a
    built-in one. `template_name(tok)` and `has_own_template(tok)` report what was chosen.
    """
    from transformers import AutoTokenizer

    from engine import remote_code
    from engine.models import ModelError

    if template not in TEMPLATE_CHOICES:
        raise ValueError(f"template '{template}': choose one of {', '.join(TEMPLATE_CHOICES)}.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **remote_code.kwargs())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_dir}: could not load the model's tokenizer ({exc}).") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{model_dir}: this model has no fast tokenizer (tokenizer.json); Tunesmith needs one "
                         "to mark which tokens are learned.")
    own = tokenizer.chat_template
    if isinstance(own, dict):  # several named templates: the default one is the chat template
        own = own.get("default") or next(iter(own.values()), None)
        tokenizer.chat_template = own
    if template == "auto":
        name = "model" if own else FALLBACK_TEMPLATE
    else:
        name = template
    if name != "model":
        tokenizer.chat_template = BUILTIN_TEMPLATES[name]
    tokenizer.tunesmith_template = name
    tokenizer.tunesmith_own_template = bool(own)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # batches need a pad id; it is always masked
    return tokenizer


def template_name(tokenizer) -> str:
    """'model' (the model's own chat template) or the name of the built-in template in use."""
    return getattr(tokenizer, "tunesmith_template", "model" if tokenizer.chat_template else "none")


def has_own_template(tokenizer) -> bool:
    """Whether the model came with its own chat template (an instruct/chat model, not a base model)."""
    return bool(getattr(tokenizer, "tunesmith_own_template", tokenizer.chat_template))


def format_mismatch_warning(tokenizer, data_format: str) -> Optional[str]:
    """A plain-words warning when the data's layout does not suit the model, else None."""
    if data_format in CHAT_FORMATS and not has_own_template(tokenizer):
        return (f"This looks like a base model without a chat template, paired with chat-style data "
                f"({data_format}). The examples are laid out with the built-in '{template_name(tokenizer)}' "
                "template; the tuned model will only answer well when asked in that same layout, which "
                "Tunesmith's chat and export use. An instruct model is usually the better starting point.")
    if data_format == "text" and has_own_template(tokenizer):
        return ("Plain text on a chat model teaches it to continue text, not to answer: its instruction "
                "following may weaken. Compare base and tuned answers after training.")
    return None


def _needs_bos(tokenizer) -> bool:
    """Whether the model expects a BOS token that its chat template does not write itself.

    Decided the way the tokenizer itself encodes plain text: if it adds BOS there, the model was
    trained with it (e.g. Llama); if not (e.g. SmolLM), adding one would be noise.
    """
    cached = getattr(tokenizer, "_tunesmith_needs_bos", None)
    if cached is None:
        bos = tokenizer.bos_token_id
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
        cached = bos is not None and bool(ids) and ids[0] == bos
        tokenizer._tunesmith_needs_bos = cached
    return cached


def _with_bos(text: str, tokenizer) -> str:
    if _needs_bos(tokenizer) and not text.startswith(tokenizer.bos_token):
        return tokenizer.bos_token + text
    return text


def apply_template(messages: list, tokenizer, *, add_generation_prompt: bool = False) -> str:
    """The chat template's text for `messages` (no BOS handling, no tokenization)."""
    template = tokenizer.chat_template
    if not template:
        raise ValueError("tokenizer has no chat template; load it with engine.templates.load_tokenizer")
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:  # a transformers without the helper: the public path, slower per call
        return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)
    # Rendering the compiled template directly skips apply_chat_template's per-call overhead, which
    # matters when a whole dataset is rendered; the variables are the same ones it passes.
    compiled = _compile_jinja_template(template)
    return compiled.render(messages=plain, add_generation_prompt=add_generation_prompt,
                           **tokenizer.special_tokens_map)


def _template_call(messages: list, tokenizer, row: int, add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError

    try:
        return apply_template(messages, tokenizer, add_generation_prompt=add_generation_prompt)
    except TemplateError as exc:
        raise DataError(f"the chat template refuses this conversation ({exc})", row=row,
                        hint="Choose another template (model.template) or fix the turn order.") from None


def assistant_spans(messages: list, tokenizer, row: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of every assistant turn in it.

    A span covers the answer and the end-of-turn marker after it (so the model learns to stop), but
    not the whitespace the template writes after the marker.
    """
    full = _template_call(messages, tokenizer, row, False)
    spans, cursor = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _template_call(messages[:index], tokenizer, row, True)
        through = _template_call(messages[: index + 1], tokenizer, row, False)
        if full.startswith(through) and through.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(through)
        else:
            header = _assistant_header(messages[:index], before, tokenizer, row)
            anchor = _after_header(full, header, messages[:index], cursor)
            start, end = _locate_answer(full, through, message["content"], anchor, row)
        end = start + len(full[start:end].rstrip())
        spans.append((start, end))
        cursor = end
    return full, spans


def _assistant_header(earlier: list, before: str, tokenizer, row: int) -> str:
    """What the template writes to open an assistant turn (e.g. '<|im_start|>assistant\n'); '' if unknown."""
    if not earlier:
        return ""
    without = _template_call(earlier, tokenizer, row, False)
    return before[len(without):] if before.startswith(without) else ""


def _after_header(full: str, header: str, earlier: list, cursor: int) -> int:
    """Where this assistant turn's text can begin: after its header, else after the turn before it.

    The answer is searched from here rather than from the previous answer, so an answer that also
    appears in the prompt ("Yes" in "Answer Yes or No") is never found inside the user's words.
    """
    if header:
        at = full.find(header, cursor)
        if at >= 0:
            return at + len(header)
    if earlier and earlier[-1]["content"].strip():
        last = earlier[-1]["content"].strip()
        at = full.find(last, cursor)
        if at >= 0:
            return at + len(last)
    return cursor


def _locate_answer(full: str, through: str, content: str, cursor: int, row: int) -> tuple[int, int]:
    """Find an answer in a template that rewrites earlier turns (so prefixes do not line up).

    The answer's own text is searched from `cursor` (just after its assistant header); the end-of-turn
    marker is whatever the template wrote right after the answer when it was the last message.
    """
    needle = content.strip()
    start = full.find(needle, cursor)
    if start < 0:
        raise DataError("the chat template drops or rewrites this answer, so it cannot be marked for learning",
                        row=row, hint="Choose a built-in template (model.template: chatml).")
    end = start + len(needle)
    tail_at = through.rfind(needle)
    tail = through[tail_at + len(needle):].rstrip() if tail_at >= 0 else ""
    if tail and full.startswith(tail, end):
        end += len(tail)
    return start, end


def _tokenize(text: str, tokenizer) -> tuple[list, array, list]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends = array("i", (end for _, end in encoded["offset_mapping"]))
    starts = [start for start, _ in encoded["offset_mapping"]]
    return encoded["input_ids"], ends, starts


def render_text(example: Example, tokenizer) -> str:
    """The full text of an example as it is tokenized for training (for statistics and display)."""
    if example.text is not None:
        return _with_bos(example.text, tokenizer) + (tokenizer.eos_token or "")
    return _with_bos(_template_call(example.messages, tokenizer, example.row, False), tokenizer)


def render(example: Example, tokenizer, *, max_length: int, train_on_prompt: bool = False,
           completion_separator: str = "") -> Rendered:
    """Token ids and labels for one example, truncated to `max_length` tokens (the start is kept).

    Chat examples learn every assistant turn including its end-of-turn token, and nothing else unless
    `train_on_prompt`. Plain-text examples learn every token, followed by EOS; with a
    `completion_separator` (engine.data.completion) only what follows it, unless `train_on_prompt`.
    Check `Rendered.rejection` for examples that cannot be learned from (nothing left after
    truncation, or no separator in the text).
    """
    problem = None
    if example.text is not None:
        text = render_text(example, tokenizer)
        spans = [(0, len(text))]
        if completion_separator and not train_on_prompt:
            start = answer_start(example.text, completion_separator)
            shift = len(_with_bos(example.text, tokenizer)) - len(example.text)
            spans = [] if start is None else [(start + shift, len(text))]
            problem = missing_reason(completion_separator) if start is None else None
    else:
        body, spans = assistant_spans(example.messages, tokenizer, example.row)
        text = _with_bos(body, tokenizer)
        shift = len(text) - len(body)
        spans = [(start + shift, end + shift) for start, end in spans]
        if train_on_prompt:
            spans = [(0, len(text))]
    ids, ends, starts = _tokenize(text, tokenizer)
    labels = list(ids)
    span_index = 0
    for position, (start, end) in enumerate(zip(starts, ends)):
        # A token is learned when it overlaps a learned span; spans and tokens are both in order.
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1
        inside = span_index < len(spans) and spans[span_index][0] < max(end, start + 1)
        if not inside:
            labels[position] = IGNORE_INDEX
    full_length = len(ids)
    if full_length > max_length:
        ids, labels, ends = ids[:max_length], labels[:max_length], ends[:max_length]
    return Rendered(input_ids=ids, labels=labels, truncated=full_length > max_length, full_length=full_length,
                    row=example.row, text=text, token_ends=ends, problem=problem)


def prompt_ids(messages: list, tokenizer) -> list[int]:
    """Token ids of the conversation so far plus the assistant header: what generation starts from.

    Chat, evaluation and export use this, so generation sees exactly the training layout.
    """
    text = _with_bos(apply_template(messages, tokenizer, add_generation_prompt=True), tokenizer)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def completion_prompt_ids(given: str, tokenizer) -> list[int]:
    """Token ids of a completion-style prompt (plain text up to and including its separator), laid out
    as in training: no chat template, BOS where the tokenizer adds one."""
    return tokenizer(_with_bos(given, tokenizer), add_special_tokens=False)["input_ids"]
