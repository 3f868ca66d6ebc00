"""Data layouts: detecting which one a file uses and turning each row into an Example.

Layouts: alpaca (instruction/input/output, optional system and history), sharegpt (conversations
of {from, value}), messages (OpenAI {role, content}), prompt_completion, text (plain text for
continued pre-training), and preference (a prompt with a chosen and a rejected answer, read by
engine.data.preference). `mapping` ({column: role}) renames a file's own columns to those roles.
A row that cannot be used becomes a Rejection with a short reason; reasons are worded so that
counting them per reason makes sense (no row-specific details in them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from engine.data.errors import DataError
from engine.data.io import EXTRA_CELLS

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference")
ROLES = ("system", "instruction", "input", "output", "prompt", "completion", "messages", "conversations", "text",
         "chosen", "rejected")
# The columns each layout needs, in detection order (the first match wins). Preference data comes
# first: its prompt may sit in a messages or conversations column (engine.data.preference).
REQUIRED = {
    "preference": ("chosen", "rejected"),
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
SPEAKERS = {"system": "system", "developer": "system", "human": "user", "user": "user", "gpt": "assistant",
            "assistant": "assistant", "model": "assistant", "bot": "assistant", "chatgpt": "assistant"}
# Column names that usually mean a role; only used to suggest a --map when detection fails.
ROLE_HINTS = {
    "question": "prompt", "query": "prompt", "input_text": "prompt", "source": "prompt", "context": "input",
    "instruction": "instruction", "prompt": "prompt", "response": "output", "answer": "completion",
    "reply": "completion", "target": "completion", "output_text": "completion", "label": "completion",
    "content": "text", "body": "text", "document": "text", "system_prompt": "system",
    "conversation": "conversations", "dialogue": "conversations", "dialog": "conversations", "chat": "messages",
    "preferred": "chosen", "better": "chosen", "winner": "chosen", "dispreferred": "rejected", "worse": "rejected",
    "loser": "rejected",
}
MAX_EXAMPLE_CHARS = 2_000_000  # far past any max_length; protects tokenization from pathological rows


@dataclass
class Example:
    """One usable example.

    `row` is the 1-based row in the file. Chat-like data has `messages` (a list of
    {"role": "system"|"user"|"assistant", "content": str}); plain text (continued pre-training) has
    `text` instead and every token of it is learned.
    """

    row: int
    messages: Optional[list] = None
    text: Optional[str] = None

    def content_key(self):
        """What makes two examples the same example (the row number aside): equal keys, identical rows."""
        if self.text is not None:
            return self.text
        return tuple((m["role"], m["content"]) for m in self.messages)

    def to_dict(self) -> dict:
        data = {"row": self.row}
        if self.messages is not None:
            data["messages"] = [dict(m) for m in self.messages]
        if self.text is not None:
            data["text"] = self.text
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Example":
        return cls(row=int(data.get("row", 0)), messages=data.get("messages"), text=data.get("text"))


@dataclass(frozen=True)
class Rejection:
    """A row that cannot be used: its 1-based number, a short reason, and the field at fault."""

    row: int
    reason: str
    field: Optional[str] = None

    def to_dict(self) -> dict:
        return {"row": self.row, "reason": self.reason, "field": self.field}


class RowProblem(Exception):
    """Raised inside normalisation; becomes a Rejection."""

    def __init__(self, reason: str, field: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


def parse_mapping(items: Union[list, dict, None]) -> dict:
    """{column: role} from CLI items like 'question=prompt' or a config dict; unknown roles are an error."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, dict) else (_split_item(item) for item in items)
    mapping = {}
    for column, role in pairs:
        column, role = str(column).strip(), str(role).strip().lower()
        if role not in ROLES:
            raise DataError(f"--map {column}={role}: '{role}' is not a role",
                            hint=f"Roles: {', '.join(ROLES)}.")
        mapping[column] = role
    return mapping


def _split_item(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise DataError(f"--map {item}: expected COLUMN=ROLE, e.g. --map question=prompt")
    column, _, role = item.partition("=")
    return column, role


def apply_mapping(columns: list, mapping: dict) -> dict:
    """{role: column} after mapping; a column named like a role stands for itself unless remapped."""
    missing = [column for column in mapping if column not in columns]
    if missing:
        raise DataError(f"--map names column(s) {', '.join(repr(c) for c in missing)} that the file does not have",
                        hint=f"Columns found: {', '.join(columns)}.")
    roles = {role: role for role in ROLES if role in columns and role not in mapping}
    for column, role in mapping.items():
        roles[role] = column
    return roles


def detect_format(columns: list, mapping: Optional[dict] = None, requested: str = "auto") -> tuple[str, dict]:
    """The layout and the {role: column} it reads; DataError listing the columns when none fits."""
    roles = apply_mapping(columns, mapping or {})
    if requested != "auto":
        if requested not in REQUIRED:
            raise DataError(f"unknown format '{requested}'", hint=f"Formats: auto, {', '.join(FORMATS)}.")
        needed = [role for role in REQUIRED[requested] if role not in roles]
        if needed:
            raise DataError(f"format '{requested}' needs column(s) {', '.join(needed)}, but the file has "
                            f"{', '.join(columns) or 'none'}", hint=_map_hint(columns, requested))
        return requested, roles
    for name, needed in REQUIRED.items():
        if all(role in roles for role in needed):
            return name, roles
    raise DataError(f"the columns are not recognised (found: {', '.join(map(str, columns)) or 'none'})",
                    hint=_map_hint(columns))


def _map_hint(columns: list, target: Optional[str] = None) -> str:
    """Suggest --map options from column names, e.g. '--map question=prompt --map answer=completion'."""
    guesses = {column: ROLE_HINTS[column.lower()] for column in map(str, columns) if column.lower() in ROLE_HINTS}
    if "output" in columns and "input" in columns and "instruction" not in columns:
        guesses["input"] = "instruction"  # input/output pairs: the input is the instruction
    roles = set(guesses.values())
    # Keep the suggestion consistent: instruction pairs with output, prompt with completion.
    if "instruction" in roles or "output" in roles:
        guesses = {c: {"prompt": "instruction", "completion": "output"}.get(r, r) for c, r in guesses.items()}
    elif "prompt" in roles or "completion" in roles:
        guesses = {c: {"instruction": "prompt", "output": "completion"}.get(r, r) for c, r in guesses.items()}
    suggestion = " ".join(f"--map {c}={r}" for c, r in guesses.items() if c != r)
    if suggestion:
        return f"Tell Tunesmith which column is which, e.g. {suggestion} (roles: {', '.join(ROLES)})."
    return ("Tell Tunesmith which column is which with --map COLUMN=ROLE, e.g. --map question=prompt "
            f"--map answer=completion (roles: {', '.join(ROLES)}).")


def _text(value, field: str, *, required: bool = True) -> str:
    """A field's text; numbers count as text, lists and objects do not."""
    if value is None:
        if required:
            raise RowProblem(f"missing field '{field}'", field)
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return _text_parts(value, field)
    if not isinstance(value, str):
        raise RowProblem("non-text content", field)
    return value


def _text_parts(parts: list, field: str) -> str:
    """OpenAI-style content parts: text parts are joined, anything else (images, audio) is refused."""
    texts = []
    for part in parts:
        if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
            raise RowProblem("non-text content", field)
        texts.append(part["text"])
    return "".join(texts)


def _check_turns(messages: list, field: str) -> list:
    """Validate the turn order of a normalised conversation; returns it with empty system turns dropped."""
    messages = [m for m in messages if not (m["role"] == "system" and not m["content"].strip())]
    if not messages:
        raise RowProblem("empty conversation", field)
    body = messages[1:] if messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        raise RowProblem("odd turn order: a system message after the conversation started", field)
    if not body:
        raise RowProblem("odd turn order: no user or assistant turn", field)
    if body[0]["role"] == "assistant":
        raise RowProblem("assistant speaks first", field)
    for previous, current in zip(body, body[1:]):
        if previous["role"] == current["role"]:
            raise RowProblem(f"odd turn order: two {current['role']} turns in a row", field)
    if body[-1]["role"] != "assistant":
        raise RowProblem("odd turn order: ends with a user turn that has no answer", field)
    for message in body:
        if not message["content"].strip():
            raise RowProblem("empty answer" if message["role"] == "assistant" else "empty prompt", field)
    return messages


def parse_turns(value, field: str, role_key: str = "role", content_key: str = "content") -> list:
    """A list of turns as [{role, content}] with known roles, in either key style; no turn-order checks."""
    if value is None:
        raise RowProblem(f"missing field '{field}'", field)
    if not isinstance(value, list):
        raise RowProblem(f"'{field}' is not a list of turns", field)
    messages = []
    for turn in value:
        if not isinstance(turn, dict):
            raise RowProblem(f"'{field}' is not a list of turns", field)
        # Accept both key styles in both layouts: files in the wild mix them.
        speaker = turn.get(role_key, turn.get("role" if role_key == "from" else "from"))
        content = turn.get(content_key, turn.get("content" if content_key == "value" else "value"))
        role = SPEAKERS.get(str(speaker).strip().lower()) if speaker is not None else None
        if role is None:
            raise RowProblem(f"unknown role '{speaker}'", field)
        messages.append({"role": role, "content": _text(content, field)})
    return messages


def _conversation(value, field: str, role_key: str, content_key: str) -> list:
    return _check_turns(parse_turns(value, field, role_key, content_key), field)


def alpaca_prompt(record: dict, roles: dict) -> list:
    """The turns before the answer in the alpaca layout: system, history pairs, instruction (+ input)."""
    instruction = _text(record.get(roles["instruction"]), roles["instruction"])
    extra = _text(record.get(roles["input"]), roles["input"], required=False) if "input" in roles else ""
    prompt = instruction.strip()
    if extra.strip():
        prompt = f"{prompt}\n\n{extra.strip()}" if prompt else extra.strip()
    if not prompt:
        raise RowProblem("empty prompt", roles["instruction"])
    messages = _system(record, roles)
    history = record.get("history")
    if history:
        if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
            raise RowProblem("'history' is not a list of [question, answer] pairs", "history")
        for question, answer in history:
            messages += [{"role": "user", "content": _text(question, "history")},
                         {"role": "assistant", "content": _text(answer, "history")}]
    return messages + [{"role": "user", "content": prompt}]


def _alpaca(record: dict, roles: dict) -> list:
    messages = alpaca_prompt(record, roles)
    output = _text(record.get(roles["output"]), roles["output"])
    if not output.strip():
        raise RowProblem("empty answer", roles["output"])
    return _check_turns(messages + [{"role": "assistant", "content": output}], roles["output"])


def _prompt_completion(record: dict, roles: dict) -> list:
    prompt = _text(record.get(roles["prompt"]), roles["prompt"])
    completion = _text(record.get(roles["completion"]), roles["completion"])
    if not prompt.strip():
        raise RowProblem("empty prompt", roles["prompt"])
    if not completion.strip():
        raise RowProblem("empty answer", roles["completion"])
    return _system(record, roles) + [{"role": "user", "content": prompt},
                                     {"role": "assistant", "content": completion}]


def _system(record: dict, roles: dict) -> list:
    if "system" not in roles:
        return []
    system = _text(record.get(roles["system"]), roles["system"], required=False)
    return [{"role": "system", "content": system}] if system.strip() else []


def normalise(record: dict, row: int, data_format: str, roles: dict) -> Example:
    """Turn one record into an Example; raises RowProblem with the reason it cannot be used."""
    if record.get(EXTRA_CELLS):
        raise RowProblem("more cells than columns (check the quoting)")
    if data_format == "text":
        text = _text(record.get(roles["text"]), roles["text"])
        if not text.strip():
            raise RowProblem("empty text", roles["text"])
        example = Example(row=row, text=text)
    elif data_format == "messages":
        example = Example(row=row, messages=_conversation(record.get(roles["messages"]), roles["messages"],
                                                          "role", "content"))
    elif data_format == "sharegpt":
        example = Example(row=row, messages=_conversation(record.get(roles["conversations"]),
                                                          roles["conversations"], "from", "value"))
    elif data_format == "alpaca":
        example = Example(row=row, messages=_alpaca(record, roles))
    elif data_format == "preference":
        from engine.data.preference import normalise_pair  # it builds on this module's helpers

        example = normalise_pair(record, row, roles)
    else:
        example = Example(row=row, messages=_prompt_completion(record, roles))
    if example_chars(example) > MAX_EXAMPLE_CHARS:
        raise RowProblem(f"too long: more than {MAX_EXAMPLE_CHARS:,} characters")
    return example


def example_chars(example: Example) -> int:
    if example.text is not None:
        return len(example.text)
    return sum(len(m["content"]) for m in example.messages) + len(getattr(example, "rejected", "") or "")
