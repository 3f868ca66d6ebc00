"""What the window remembers between sessions: the project (the run config being edited) and the window.

Kept as one JSON file in the data folder (`engine.paths.data_dir()/window-state.json`), so that
TUNESMITH_HOME isolates it in tests and a user can find and delete it. A damaged or outdated file
never stops the window from opening: unreadable parts fall back to the defaults.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from engine import config as cfg
from engine import paths
from engine.config import RunConfig

STATE_FILE = "window-state.json"
SAMPLE_DATASET = Path(__file__).resolve().parent.parent / "resources" / "sample_dataset.jsonl"
log = logging.getLogger(__name__)


def state_path() -> Path:
    """The file the window state lives in."""
    return paths.data_dir() / STATE_FILE


def default_config() -> RunConfig:
    """The config a first-time user starts from: the starter model, LoRA and the sample dataset."""
    config = RunConfig()
    config.model.name = "starter"
    cfg.apply_method_defaults(config, "lora")
    if SAMPLE_DATASET.is_file():
        config.data.path = str(SAMPLE_DATASET)
    return config


def load_state() -> dict[str, Any]:
    """The saved state as a dict ({} when there is none or it cannot be read)."""
    path = state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable window state %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def load_config(state: Optional[dict] = None) -> RunConfig:
    """The last session's config, or the first-time defaults.

    Settings that no longer exist or hold bad values are skipped one by one, so an update that
    renames one field keeps the rest of the user's choices.
    """
    state = load_state() if state is None else state
    saved = state.get("config")
    if not isinstance(saved, dict):
        return default_config()
    config = default_config()
    for section, values in saved.items():
        if section == "out" or not isinstance(values, dict):
            continue
        for name, value in values.items():
            try:
                cfg.set_value(config, f"{section}.{name}", value, source=STATE_FILE)
            except cfg.ConfigError as exc:
                log.warning("Skipping saved setting: %s", exc)
    if config.data.path and not Path(config.data.path).exists():
        # The file was moved or deleted since: start from the sample instead of an error.
        config.data.path = default_config().data.path
        config.data.mapping = {}
    return config


def save_state(config: RunConfig, **window: Any) -> Path:
    """Write the config and any window details (geometry, current tab) given as keywords."""
    data = {"version": 1, "config": cfg.to_dict(config), **window}
    path = state_path()
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)  # a crash mid-write must not leave half a file
    return path
