"""The configuration tree: YAML round trip, overrides, validation and guard rails."""
from __future__ import annotations

import math

import pytest

from engine import config as cfg


def test_every_field_has_help():
    for key, _value, meta in cfg.iter_fields(cfg.RunConfig()):
        assert meta.get("help"), f"{key} has no help text"


def test_yaml_round_trip(tmp_path):
    config = cfg.RunConfig()
    config.data.path = "data.jsonl"
    config.data.mapping = {"question": "prompt", "answer": "completion"}
    config.training.lr = 1e-4
    path = tmp_path / "run.yaml"
    cfg.save(config, path)
    assert cfg.load(path) == config


def test_dotted_overrides_convert_types():
    config = cfg.RunConfig()
    cfg.set_value(config, "training.lr", "3e-5")
    cfg.set_value(config, "method.lora_r", "8")
    cfg.set_value(config, "data.train_on_prompt", "yes")
    cfg.set_value(config, "data.mapping", "{q: prompt}")
    assert config.training.lr == 3e-5 and config.method.lora_r == 8
    assert config.data.train_on_prompt is True and config.data.mapping == {"q": "prompt"}


@pytest.mark.parametrize("key,value,needle", [
    ("training.lr", "fast", "not a valid float"),
    ("method.lora_r", "2.5", "not a valid int"),
    ("training.nope", "1", "has no setting 'nope'"),
    ("nowhere.lr", "1", "unknown setting"),
])
def test_bad_overrides_name_the_key(key, value, needle):
    with pytest.raises(cfg.ConfigError, match=needle):
        cfg.set_value(cfg.RunConfig(), key, value)


def test_unknown_section_in_yaml_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainng:\n  lr: 1e-4\n")
    with pytest.raises(cfg.ConfigError, match="unknown section 'trainng'"):
        cfg.load(path)


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("training: [unclosed\n")
    with pytest.raises(cfg.ConfigError, match="broken.yaml: not valid YAML"):
        cfg.load(path)


def test_learning_rate_guard_rails():
    config = cfg.RunConfig()
    config.data.path = "x.jsonl"
    assert cfg.validate(config) == []
    config.training.lr = 1e-3
    warnings = cfg.validate(config)
    assert [w.key for w in warnings] == ["training.lr"] and "1e-05..0.0002" in warnings[0].message
    config.training.lr = 5.0
    with pytest.raises(cfg.ConfigError, match="training.lr"):
        cfg.validate(config)
    config.training.lr = math.nan
    with pytest.raises(cfg.ConfigError, match="training.lr"):
        cfg.validate(config)


def test_prompt_tuning_has_its_own_typical_learning_rate():
    config = cfg.RunConfig()
    config.data.path = "x.jsonl"
    cfg.apply_method_defaults(config, "prompt")
    assert config.training.lr == 3e-2
    assert cfg.validate(config) == []


def test_missing_data_and_bad_choice_are_errors():
    config = cfg.RunConfig()
    config.method.name = "dora"
    messages = [p.message for p in cfg.check(config) if p.level == "error"]
    assert any("data.path" in m for m in messages)
    assert any("method.name" in m and "qlora" in m for m in messages)
