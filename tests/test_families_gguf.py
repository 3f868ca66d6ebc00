"""The compatibility matrix, part 3: GGUF export of every family llama.cpp runs.

Each family's tiny model (tests/tiny_families.py, with settings real checkpoints use where the
matrix's extreme ones would not survive f16 rounding) gets a LoRA run, is exported to GGUF and must:
carry llama.cpp's architecture, tensor names and family metadata (read back with gguf-py), and pass
the exporter's own verification, which reads the file with transformers' GGUF loader and, where the
optional llama-cpp-python is installed, runs it in llama.cpp itself.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.export import export_run, verify_llamacpp
from tests.export_runs import make_lora_run
from tests.tiny_families import build_family_model

LLAMA3_ROPE = {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}
# case -> (family, config overrides, llama.cpp architecture, tensors that must be there, metadata that must be there)
CASES = {
    "llama": ("llama", {}, "llama", {"output.weight", "blk.1.ffn_gate.weight"}, {"llama.rope.dimension_count": 16}),
    "llama3-rope": ("llama", LLAMA3_ROPE, "llama", {"rope_freqs.weight"}, {"llama.rope.freq_base": 500000.0}),
    "qwen2": ("qwen2", {}, "qwen2", {"blk.0.attn_q.bias", "blk.0.attn_v.bias"}, {"qwen2.attention.head_count_kv": 2}),
    "qwen3": ("qwen3", {}, "qwen3", {"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"},
              {"qwen3.attention.key_length": 16}),
    "mistral": ("mistral", {"sliding_window": 512}, "llama", {"output.weight"}, {}),
    "gemma2": ("gemma2", {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}, "gemma2",
               {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight", "blk.0.ffn_norm.weight"},
               {"gemma2.attn_logit_softcapping": 50.0, "gemma2.final_logit_softcapping": 30.0,
                "gemma2.attention.sliding_window": 4, "gemma2.attention.sliding_window_pattern": [True, False],
                "gemma2.attention.key_length": 16}),
    "gemma3": ("gemma3", {}, "gemma3", {"blk.0.attn_q_norm.weight", "blk.0.post_ffw_norm.weight"},
               {"gemma3.attention.sliding_window": 4, "gemma3.attention.sliding_window_pattern": [True, False],
                "gemma3.rope.freq_base": 1000000.0, "gemma3.rope.freq_base_swa": 10000.0}),
    "phi3": ("phi3", {}, "phi3", {"blk.0.attn_qkv.weight", "blk.0.ffn_up.weight", "output.weight"},
             {"phi3.rope.scaling.original_context_length": 4096, "phi3.rope.dimension_count": 16}),
}
TIED = {"gemma2", "gemma3", "qwen2", "qwen3"}  # output layer = embedding: no output.weight in the file


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """case -> (run folder, GGUF path, progress messages), exported once."""
    cache = {}

    def get(case: str):
        if case not in cache:
            family, overrides, *_ = CASES[case]
            root = tmp_path_factory.mktemp(f"gguf-{case}")
            base = build_family_model(family, root / "base", overrides=overrides)
            run = make_lora_run(root / f"{case}-run", base)
            messages = []
            path = export_run(run, "gguf-f16", root / "export", progress=lambda m, f: messages.append(m))
            cache[case] = (run, path, messages)
        return cache[case]

    return get


@pytest.mark.parametrize("case", list(CASES))
def test_each_family_is_written_in_its_llama_cpp_layout_and_verified(case, exported):
    from engine.export.verify import file_metadata

    family, _, arch, tensors_needed, metadata_needed = CASES[case]
    run, path, messages = exported(case)
    fields, tensors = file_metadata(path)
    assert fields["general.architecture"] == arch
    assert tensors_needed <= tensors.keys(), sorted(tensors)
    assert ("output.weight" in tensors) == (family not in TIED)
    for key, value in metadata_needed.items():
        assert fields[key] == pytest.approx(value), key
    verification = json.loads((path.parent / "tunesmith-export.json").read_text())["verification"]
    assert verification["passed"] and verification["top1_agreement"] == 1.0
    if verify_llamacpp.available():  # the real program ran the file and agreed
        assert verification["llama_cpp_relative_diff"] <= verification["tolerance"]
        assert verification["llama_cpp_tokens_match"] and verification["llama_cpp_top1_agreement"] == 1.0
    else:
        assert verification["llama_cpp_relative_diff"] is None
        assert any("llama.cpp itself not installed" in m for m in messages)


def test_gemma_norms_are_stored_as_one_plus_the_weight(exported):
    from safetensors import safe_open

    from engine.export.verify import file_metadata

    run, path, _ = exported("gemma2")
    _, tensors = file_metadata(path)
    base = json.loads((run / "run-info.json").read_text())["base_model_path"]
    with safe_open(f"{base}/model.safetensors", "np") as weights:
        norm = weights.get_tensor("model.layers.0.pre_feedforward_layernorm.weight")
    assert np.allclose(tensors["blk.0.ffn_norm.weight"], norm + 1.0)


def test_llama3_frequency_scaling_travels_as_rope_freqs(exported):
    from engine.export.verify import file_metadata

    _, path, _ = exported("llama3-rope")
    _, tensors = file_metadata(path)
    divisors = tensors["rope_freqs.weight"]
    # 8 frequencies for a head of 16: the fast ones unscaled, the slowest divided by the full factor 32
    assert divisors.shape == (8,) and divisors[0] == 1.0 and divisors[-1] == pytest.approx(32.0)


def test_a_window_llama_cpp_does_not_slide_is_said(exported):
    _, _, messages = exported("mistral")
    assert any("last 512 tokens; llama.cpp lets it see the whole context" in m for m in messages)


def test_a_family_setting_llama_cpp_would_ignore_is_refused(tmp_path):
    from engine.export import ExportError

    base = build_family_model("gemma2", tmp_path / "base", overrides={"query_pre_attn_scalar": 144})
    run = make_lora_run(tmp_path / "run", base)
    with pytest.raises(ExportError, match="query_pre_attn_scalar 144 .llama.cpp assumes 16"):
        export_run(run, "gguf-f16", tmp_path / "out")
    assert not (tmp_path / "out").exists()
