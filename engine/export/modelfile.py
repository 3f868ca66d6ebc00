"""An Ollama Modelfile whose TEMPLATE lays out a conversation exactly as the training chat template did.

Ollama templates are Go templates, training templates are Jinja. Rather than recognising template
families by name, the Jinja template is rendered with marker messages and taken apart: the text
around each role's content, a constant head, the generation prompt, and any default system prompt
it inserts. Those pieces make a Go template; before it is used, the same pieces are re-assembled
in Python for several conversations and must reproduce the Jinja output character for character.
A template that does not fit this shape gets no TEMPLATE line and a notice instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

_MARK = {"system": "\u27e6SYSTEM\u27e7", "user": "\u27e6USER{}\u27e7", "assistant": "\u27e6ASSISTANT{}\u27e7"}


@dataclass(frozen=True)
class TemplateParts:
    """A chat layout: head + for each message (prefix[role] + content + suffix[role]) + generation prompt."""

    head: str
    prefix: dict
    suffix: dict
    generation: str
    default_system: Optional[str]  # what the template says when the conversation has no system message

    def render(self, messages: list[dict]) -> str:
        body = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return self.head + body + self.generation

    def go_template(self) -> str:
        branches = "".join(
            f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}'
            f"{self.prefix[role]}{{{{ .Content }}}}{self.suffix[role]}"
            for i, role in enumerate(("system", "user", "assistant")))
        return f"{self.head}{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{self.generation}"


def _conversation(turns: int, system: bool) -> list[dict]:
    messages = [{"role": "system", "content": _MARK["system"]}] if system else []
    for turn in range(turns):
        messages.append({"role": "user", "content": _MARK["user"].format(turn)})
        messages.append({"role": "assistant", "content": _MARK["assistant"].format(turn)})
    return messages


def _between(text: str, start: Optional[str], end: Optional[str]) -> str:
    begin = text.index(start) + len(start) if start else 0
    return text[begin:text.index(end, begin)] if end else text[begin:]


def _strip_prefix(text: str, prefix: str) -> str:
    if not text.startswith(prefix):
        raise ValueError("layout is not per-message")
    return text[len(prefix):]


def _strip_suffix(text: str, suffix: str) -> str:
    if suffix and not text.endswith(suffix):
        raise ValueError("layout is not per-message")
    return text[:len(text) - len(suffix)] if suffix else text


def split_template(tokenizer) -> TemplateParts:
    """Take the tokenizer's chat template apart; ValueError when it is not a per-message layout."""
    from engine.templates import apply_template

    def render(messages, generation=False):
        return apply_template(messages, tokenizer, add_generation_prompt=generation)

    u0, a0, u1, a1 = (_MARK["user"].format(0), _MARK["assistant"].format(0),
                      _MARK["user"].format(1), _MARK["assistant"].format(1))
    sys_mark = _MARK["system"]
    full = render(_conversation(2, system=True))
    assistant_suffix = _between(full, a1, None)
    user_prefix = _strip_prefix(_between(full, a0, u1), assistant_suffix)
    system_suffix = _strip_suffix(_between(full, sys_mark, u0), user_prefix)
    head_and_system_prefix = _between(full, None, sys_mark)

    one_turn = render(_conversation(1, system=True)[:2])
    user_suffix = _between(one_turn, u0, None)
    assistant_prefix = _strip_prefix(_between(full, u0, a0), user_suffix)
    generation = _strip_prefix(render(_conversation(1, system=True)[:2], generation=True), one_turn)

    # Without a system message: either a default one appears, or a constant head, or nothing.
    before_user = _between(render([{"role": "user", "content": u0}]), None, u0)
    default_system, head = None, ""
    if before_user.startswith(head_and_system_prefix) and before_user.endswith(system_suffix + user_prefix):
        default_system = before_user[len(head_and_system_prefix):len(before_user) - len(system_suffix + user_prefix)]
    else:
        head = _strip_suffix(before_user, user_prefix)
    system_prefix = _strip_prefix(head_and_system_prefix, head)
    parts = TemplateParts(head=head, generation=generation, default_system=default_system,
                          prefix={"system": system_prefix, "user": user_prefix, "assistant": assistant_prefix},
                          suffix={"system": system_suffix, "user": user_suffix, "assistant": assistant_suffix})
    _check_reproduces(parts, render)
    return parts


def _check_reproduces(parts: TemplateParts, render) -> None:
    """The pieces must rebuild the Jinja output for every conversation shape Ollama will send."""
    samples = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
               [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]]
    if parts.default_system is not None:  # Ollama inserts the Modelfile's SYSTEM when none is given
        samples.append([{"role": "system", "content": parts.default_system}, {"role": "user", "content": "x"}])
    else:
        samples.append([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                        {"role": "user", "content": "z"}])
    for messages in samples:
        if parts.render(messages) != render(messages, generation=True):
            raise ValueError("pieces do not reproduce the template")


def _stop_words(parts: TemplateParts, tokenizer) -> list[str]:
    """Where the model's answer ends: special tokens closing an assistant turn, EOS, the next user header."""
    specials = set(tokenizer.all_special_tokens) | {
        t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    stops = [t for t in sorted(specials, key=parts.suffix["assistant"].find)
             if t and t in parts.suffix["assistant"]]
    if tokenizer.eos_token:
        stops.append(tokenizer.eos_token)
    user_header = parts.prefix["user"].strip()
    if user_header:  # a model that runs on into the next "### Instruction:" or "<|im_start|>user" must stop
        stops.append(user_header.splitlines()[0])
    return list(dict.fromkeys(stops))


def _quoted(text: str) -> str:
    if '"""' in text:
        raise ValueError("text contains triple quotes")
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, tokenizer) -> tuple[str, list[str]]:
    """The Modelfile for `gguf_name` (in the same folder) and notices for the user."""
    lines = ["# Ollama model file written by Tunesmith.",
             f"# Create the model with:  ollama create my-model -f Modelfile", f"FROM ./{gguf_name}"]
    notices: list[str] = []
    parts = None
    if getattr(tokenizer, "chat_template", None):
        try:
            parts = split_template(tokenizer)
            if "{{" in "".join([parts.head, parts.generation, *parts.prefix.values(), *parts.suffix.values()]):
                raise ValueError("literal braces")
            lines.append(f"TEMPLATE {_quoted(parts.go_template())}")
            if parts.default_system:
                lines.append(f"SYSTEM {_quoted(parts.default_system)}")
        except Exception:  # any template we cannot take apart is handled the same way: say so
            parts = None
    if parts is None:
        notices.append("The chat template could not be written as an Ollama TEMPLATE, so the Modelfile has "
                       "none; Ollama will pass prompts through as plain text. LM Studio and llama.cpp read "
                       "the chat template from the GGUF file itself.")
    stops = _stop_words(parts, tokenizer) if parts else ([tokenizer.eos_token] if tokenizer.eos_token else [])
    lines += [f'PARAMETER stop "{stop}"' for stop in stops if '"' not in stop]
    return "\n".join(lines) + "\n", notices
