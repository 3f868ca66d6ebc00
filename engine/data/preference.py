"""Preference data: a prompt and two answers to it, one preferred ("chosen") over the other ("rejected").

A file is preference data when it has a chosen and a rejected column (directly or through --map).
Where the prompt comes from decides the layout of a row:
- a `prompt` column: a string, or a list of messages (TRL's conversational layout); the answers are
  strings, single {role, content} / {from, value} turns, or message lists that repeat the prompt;
- `instruction` (+ `input`, `system`, `history`): LLaMA-Factory's alpaca preference layout;
- `conversations` or `messages`: the turns before the answer, as in LLaMA-Factory's ShareGPT DPO demo
  (`chosen` and `rejected` are single {from, value} turns there);
- none of these: `chosen` and `rejected` are whole conversations that share everything up to the last
  assistant turn (Anthropic HH): message lists, or transcripts written "\\n\\nHuman: ...\\n\\nAssistant: ...".
A row is refused, with its number, when the two answers are the same, either is empty, or the two
conversations do not share their prompt.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from engine.data.formats import (MAX_EXAMPLE_CHARS, Example, RowProblem, _check_turns, _system, _text,
                                 alpaca_prompt, example_chars, parse_turns)

# Where a row's prompt is read from, in the order tried; none of them: the prompt is implicit.
PROMPT_ROLES = ("prompt", "instruction", "conversations", "messages")
SAME_ANSWER = "chosen and rejected are the same answer"
DIFFERENT_PROMPTS = "chosen and rejected have different prompts"
# Anthropic HH transcripts: each turn starts with a blank line and the speaker's name.
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}
# Above this share of pairs with the longer answer chosen, the model can learn "longer is better".
LENGTH_BIAS_SHARE = 0.65


@dataclass
class PreferencePair(Example):
    """One usable pair: `messages` is the prompt followed by the chosen answer; `rejected` is the other answer.

    Being an Example, a pair trains (on its chosen answer) and evaluates wherever an example does.
    """

    rejected: str = ""

    @property
    def prompt(self) -> list:
        """The conversation before the two answers, ending with the user's turn."""
        return self.messages[:-1]

    @property
    def chosen(self) -> str:
        return self.messages[-1]["content"]

    def content_key(self):
        """Two pairs are the same pair when prompt and both answers are (one prompt often has several pairs)."""
        return super().content_key() + (self.rejected,)

    def side(self, which: str) -> Example:
        """The prompt with the "chosen" or the "rejected" answer, as a plain Example."""
        answer = self.chosen if which == "chosen" else self.rejected
        return Example(row=self.row, messages=self.prompt + [{"role": "assistant", "content": answer}])

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["rejected"] = self.rejected
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PreferencePair":
        return cls(row=int(data.get("row", 0)), messages=data.get("messages"), rejected=str(data.get("rejected", "")))


def is_pair(data: dict) -> bool:
    """Whether an Example.to_dict() line holds a preference pair."""
    return isinstance(data, dict) and "rejected" in data and isinstance(data.get("messages"), list)


def normalise_pair(record: dict, row: int, roles: dict) -> PreferencePair:
    """One record of a preference file as a PreferencePair; raises RowProblem saying why it cannot be used."""
    source = next((role for role in PROMPT_ROLES if role in roles), None)
    if source is None:
        prompt, chosen, rejected = _split_conversations(record, roles)
    else:
        prompt = _prompt(record, roles, source)
        chosen = _answer(record.get(roles["chosen"]), roles["chosen"], prompt)
        rejected = _answer(record.get(roles["rejected"]), roles["rejected"], prompt)
    for answer, role in ((chosen, "chosen"), (rejected, "rejected")):
        if not answer.strip():
            raise RowProblem(f"empty {role} answer", roles[role])
    if chosen.strip() == rejected.strip():
        raise RowProblem(SAME_ANSWER, roles["rejected"])
    messages = _check_turns(prompt + [{"role": "assistant", "content": chosen}], roles["chosen"])
    pair = PreferencePair(row=row, messages=messages, rejected=rejected)
    if example_chars(pair) > MAX_EXAMPLE_CHARS:
        raise RowProblem(f"too long: more than {MAX_EXAMPLE_CHARS:,} characters")
    return pair


def _prompt(record: dict, roles: dict, source: str) -> list:
    """The turns before the answers, from the row's prompt column, ending with the user's turn."""
    field = roles[source]
    if source == "instruction":
        return alpaca_prompt(record, roles)
    value = record.get(field)
    if source == "prompt" and not isinstance(value, list):
        text = _text(value, field)
        if not text.strip():
            raise RowProblem("empty prompt", field)
        return _system(record, roles) + [{"role": "user", "content": text}]
    turns = parse_turns(value, field, "from" if source == "conversations" else "role",
                        "value" if source == "conversations" else "content")
    if not turns or turns[-1]["role"] != "user":
        raise RowProblem("the prompt does not end with a user turn", field)
    has_system = any(turn["role"] == "system" for turn in turns)
    return turns if has_system else _system(record, roles) + turns


def _answer(value, field: str, prompt: list) -> str:
    """One answer: a string, a single turn, or a message list that may repeat the prompt before it."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return _text(value, field)
    turns = parse_turns(value, field)
    if len(turns) > 1:
        if _same_turns(turns[:len(prompt)], prompt):
            turns = turns[len(prompt):]
        elif turns[-1]["role"] == "assistant" and len(turns) > len(prompt):
            raise RowProblem(f"'{field}' repeats a different prompt", field)
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise RowProblem(f"'{field}' is not one assistant answer", field)
    return turns[0]["content"]


def _split_conversations(record: dict, roles: dict) -> tuple[list, str, str]:
    """(prompt, chosen, rejected) from two whole conversations that differ only in their last answer."""
    chosen = _whole_conversation(record.get(roles["chosen"]), roles["chosen"])
    rejected = _whole_conversation(record.get(roles["rejected"]), roles["rejected"])
    if not _same_turns(chosen[:-1], rejected[:-1]):
        raise RowProblem(DIFFERENT_PROMPTS, roles["rejected"])
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def _whole_conversation(value, field: str) -> list:
    if isinstance(value, list):
        turns = parse_turns(value, field)
    else:
        turns = _hh_transcript(_text(value, field))
        if turns is None:
            raise RowProblem("no prompt: the answers are plain text and no column holds the prompt "
                             "(prompt, instruction, conversations or messages)", field)
    if not turns or turns[-1]["role"] != "assistant":
        raise RowProblem(f"'{field}' does not end with an assistant answer", field)
    if len(turns) < 2:
        raise RowProblem(f"'{field}' has an answer but no prompt before it", field)
    return turns


def _hh_transcript(text: str) -> Optional[list]:
    """An Anthropic HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as turns; None when it is not one."""
    marks = list(_HH_TURN.finditer(text))
    if not marks or text[:marks[0].start()].strip():
        return None
    turns = []
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(text)
        turns.append({"role": _HH_ROLES[mark.group(1)], "content": text[mark.end():end].strip()})
    return turns


def _same_turns(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x["role"] == y["role"] and x["content"].strip() == y["content"].strip()
                                    for x, y in zip(a, b))


def pair_warnings(pairs: list) -> list[str]:
    """Plain-words warnings about a whole preference file: the known bias towards longer chosen answers."""
    if not pairs:
        return []
    longer = Counter("chosen" if len(p.chosen) > len(p.rejected) else "rejected" if len(p.rejected) > len(p.chosen)
                     else "same" for p in pairs)
    share = longer["chosen"] / len(pairs)
    if share < LENGTH_BIAS_SHARE:
        return []
    return [f"In {100 * share:.0f}% of the pairs the chosen answer is the longer one. The model may learn that "
            "longer is better rather than what makes an answer better (verbose without substance): check the "
            "length-difference chart, and compare answer lengths before and after in the evaluation."]
