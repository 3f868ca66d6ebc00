"""Generation settings for chat and evaluation, each with a plain-words help text and a valid range.

Built with `engine.config.setting` so the window can show the same tooltips and ranges as for the
training settings, and the CLI the same help.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from engine.config import ConfigError, setting


@dataclass
class GenerationSettings:
    max_new_tokens: int = setting(256, "Longest answer, in tokens (a token is about three quarters of a word).",
                                  valid=(1, 8192), typical=(16, 1024))
    temperature: float = setting(0.7, "How adventurous the wording is. 0 always picks the most likely next "
                                 "word (same answer every time); 0.7 is lively; above 1.5 often rambles.",
                                 valid=(0.0, 5.0), typical=(0.0, 1.5))
    top_p: float = setting(0.9, "Only choose among the most likely words that together make up this share of "
                           "the chances. Lower is safer and duller; 1.0 switches it off.", valid=(0.01, 1.0))
    repetition_penalty: float = setting(1.1, "Discourages repeating the same words. 1.0 is off; 1.1 to 1.3 "
                                        "helps small models that loop.", valid=(0.5, 3.0), typical=(1.0, 1.5))
    seed: int = setting(0, "Starting point for the random choices: the same seed and settings give the same "
                        "answer again.", valid=(0, 2**31 - 1))

    @property
    def greedy(self) -> bool:
        """Temperature 0 means: always take the most likely token (deterministic)."""
        return self.temperature <= 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "GenerationSettings":
        """Build from plain data (a request from the window); unknown keys and bad values are refused."""
        settings = cls()
        for key, value in (data or {}).items():
            settings.set(key, value)
        return settings

    def set(self, name: str, value: Any) -> None:
        """Set one setting, converting and range-checking it; errors name the setting and the range."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        if name not in fields:
            raise ConfigError(f"Unknown generation setting '{name}'. Known: {', '.join(fields)}.")
        kind = int if fields[name].type in (int, "int") else float
        try:
            converted = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Generation setting {name} = {value!r} is not a number.") from None
        low, high = fields[name].metadata["valid"]
        if not (low <= converted <= high):
            raise ConfigError(f"Generation setting {name} = {value}: must be between {low} and {high}. "
                              f"{fields[name].metadata['help']}")
        setattr(self, name, converted)


def setting_help(name: str) -> dict:
    """Help text and ranges of one generation setting, for tooltips and `--help`."""
    for f in dataclasses.fields(GenerationSettings):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)
