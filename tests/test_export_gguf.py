"""GGUF export of tiny Llama runs: read back by transformers' own GGUF loader and compared.

Tolerances are the exporter's own (engine.export.GGUF_TOLERANCES): next-token logits within 1% of
the largest reference logit for f16, 5% for q8_0.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engine.export import GGUF_TOLERANCES, SUPPORTED_GGUF_ARCHITECTURES, ExportError, export_run
from tests.export_runs import last_logits, make_lora_run

PROMPTS = ["<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
           "The quick brown fox jumps over 123 lazy dogs!"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    return make_lora_run(tmp_path_factory.mktemp("runs") / "lora-run", tiny_model_dir)


@pytest.fixture(scope="module")
def merged_model(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    return PeftModel.from_pretrained(base, str(lora_run / "adapter")).merge_and_unload().eval()


def _read_fields(path):
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    scalars = {k: f.contents() for k, f in reader.fields.items()
               if not k.startswith("tokenizer.ggml.") or k.endswith(("_id", ".model", ".pre", "_token"))}
    return scalars, {t.name: t.tensor_type.name for t in reader.tensors}


@pytest.mark.parametrize("target, stored", [("gguf-f16", "F16"), ("gguf-q8_0", "Q8_0")])
def test_gguf_reads_back_with_the_merged_models_logits_tokenizer_and_template(
        lora_run, merged_model, tmp_path, target, stored):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = export_run(lora_run, target, tmp_path / "export")

    assert path.parent == tmp_path / "export" and path.suffix == ".gguf"
    fields, tensors = _read_fields(path)
    training_tokenizer = AutoTokenizer.from_pretrained(str(lora_run / "tokenizer"))
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.chat_template"] == training_tokenizer.chat_template
    assert fields["tokenizer.ggml.eos_token_id"] == training_tokenizer.eos_token_id
    assert tensors["blk.0.attn_q.weight"] == stored and tensors["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in tensors, "tied embeddings are written once"

    read_model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name).eval()
    read_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for prompt in PROMPTS:
        ids = training_tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert read_tokenizer(prompt, add_special_tokens=False)["input_ids"] == ids
        expected = last_logits(merged_model, training_tokenizer, prompt)
        got = last_logits(read_model, training_tokenizer, prompt)
        relative = (expected - got).abs().max() / expected.abs().max()
        assert relative <= GGUF_TOLERANCES[target], f"{target}: logits off by {relative:.3%}"
        assert expected.argmax() == got.argmax()

    modelfile = (path.parent / "Modelfile").read_text()
    assert f"FROM ./{path.name}\n" in modelfile
    assert 'eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in modelfile
    assert 'SYSTEM """You are a helpful assistant."""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile


def test_gguf_file_destination_gets_the_modelfile_beside_it(lora_run, tmp_path):
    path = export_run(lora_run, "gguf-q8_0", tmp_path / "models" / "bot.gguf", verify=False)

    assert path == tmp_path / "models" / "bot.gguf" and path.is_file()
    assert sorted(os.listdir(path.parent)) == ["Modelfile", "bot.gguf"]
    assert "FROM ./bot.gguf" in (path.parent / "Modelfile").read_text()


def test_unsupported_architecture_is_refused_with_the_supported_list(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    base = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = make_lora_run(tmp_path / "gpt2-run", base)

    with pytest.raises(ExportError) as caught:
        export_run(run, "gguf-f16", tmp_path / "out")
    assert "GPT2LMHeadModel" in str(caught.value) and "merged" in str(caught.value)
    assert all(name in str(caught.value) for name in SUPPORTED_GGUF_ARCHITECTURES)
    assert "Gemma 2" in str(caught.value) and "Qwen3" in str(caught.value)
    assert not (tmp_path / "out").exists()


class _StopHalfway(Exception):
    pass


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, _StopHalfway])
@pytest.mark.parametrize("out_name", ["folder", "model.gguf"])
def test_export_stopped_halfway_leaves_nothing_behind(lora_run, tmp_path, interruption, out_name):
    destination = tmp_path / "dest"
    destination.mkdir()
    seen = []

    def progress(message, fraction):
        seen.append(message)
        if message.startswith("Writing blk.1."):  # well into the tensor data
            raise interruption()

    with pytest.raises(interruption):
        export_run(lora_run, "gguf-f16", destination / out_name, progress=progress)
    assert any(m.startswith("Writing blk.0.") for m in seen)
    assert os.listdir(destination) == []


def test_not_enough_disk_space_is_refused_before_writing(lora_run, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(ExportError, match="Not enough free disk space.*MB is free"):
        export_run(lora_run, "merged", tmp_path / "merged")
    with pytest.raises(ExportError, match="Not enough free disk space"):
        export_run(lora_run, "gguf-f16", tmp_path / "gguf")
    assert os.listdir(tmp_path) == []


def test_a_wrong_file_fails_verification_and_is_not_kept(lora_run, tmp_path, monkeypatch):
    from engine.export import gguf_tensors

    # Skipping the rotary row order is the classic llama.cpp conversion bug: the read-back check must catch it.
    monkeypatch.setattr(gguf_tensors, "reorder_for_rotary", lambda weight, heads: weight)
    with pytest.raises(ExportError, match="did not match the merged model"):
        export_run(lora_run, "gguf-f16", tmp_path / "gguf")
    assert os.listdir(tmp_path) == []


def test_rotary_reorder_is_what_gguf_readers_undo():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from engine.export.gguf_tensors import reorder_for_rotary

    weight = np.arange(8 * 2 * 3, dtype=np.float32).reshape(16, 3)  # 2 heads of 8 rows
    reordered = reorder_for_rotary(weight, heads=2)
    assert not np.array_equal(reordered, weight)
    assert reordered[:4, 0].tolist() == [0, 12, 3, 15]  # head 0: row 0, row 4, row 1, row 5
    restored = LlamaTensorProcessor()._reverse_permute_weights(reordered, 2, 2)
    assert np.array_equal(restored, weight)
