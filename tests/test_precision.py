"""training.precision 'auto' and its override $TUNESMITH_PRECISION, which lets one machine run as another."""
from __future__ import annotations

import pytest
import torch

from engine import config as cfg
from engine.train import hardware
from engine.train.methods import quant_compute_dtype

CPU = torch.device("cpu")


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_the_environment_decides_what_auto_means(forced, monkeypatch):
    monkeypatch.setenv(hardware.PRECISION_ENV, forced)
    chosen = hardware.choose("auto", CPU)
    assert chosen.precision == forced
    assert any(hardware.PRECISION_ENV in note for note in chosen.notes)
    # QLoRA's 4-bit arithmetic follows the training precision on the CPU
    assert quant_compute_dtype("auto", CPU, "auto") == hardware.DTYPES[forced]


def test_a_precision_set_in_the_config_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(hardware.PRECISION_ENV, "bf16")
    assert hardware.choose("fp32", CPU).precision == "fp32"
    assert quant_compute_dtype("auto", CPU, "fp32") == torch.float32
    assert quant_compute_dtype("bf16", CPU, "fp32") == torch.bfloat16  # the explicit QLoRA setting wins too


def test_without_the_variable_auto_follows_the_hardware(monkeypatch):
    monkeypatch.delenv(hardware.PRECISION_ENV, raising=False)
    expected = "bf16" if hardware.cpu_has_fast_bf16() else "fp32"
    assert hardware.choose("auto", CPU).precision == expected
    monkeypatch.setenv(hardware.PRECISION_ENV, "auto")
    assert hardware.choose("auto", CPU).precision == expected


def test_a_misspelt_value_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(hardware.PRECISION_ENV, "float32")
    with pytest.raises(cfg.ConfigError, match="TUNESMITH_PRECISION='float32': choose one of auto, bf16"):
        hardware.choose("auto", CPU)


def test_the_memory_estimate_counts_in_the_forced_precision(tiny_model_dir, monkeypatch):
    from engine.train.memory import estimate_memory

    config = cfg.RunConfig()
    config.model.name = str(tiny_model_dir)
    config.method.name = "full"
    sizes = {}
    for forced in ("fp32", "bf16"):
        monkeypatch.setenv(hardware.PRECISION_ENV, forced)
        sizes[forced] = estimate_memory(config, tiny_model_dir, "cpu")
    assert sizes["bf16"] < sizes["fp32"]
