"""The starter model, GGUF import, local folders, hub ids and `tunesmith-cli models`."""
from __future__ import annotations

import json
import shutil

import pytest

from engine import models


def test_local_folder_resolves_to_itself(tiny_model_dir):
    assert models.resolve_model(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_folder_without_config_is_refused_with_advice(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(models.ModelError, match="no config.json"):
        models.resolve_model(str(tmp_path))


def test_unknown_spec_says_what_is_accepted():
    with pytest.raises(models.ModelError, match="starter"):
        models.resolve_model("definitely not a model")


def test_hub_id_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="internet"):
        models.resolve_model("SomeOrg/some-model-that-is-not-here")


def test_missing_gguf_file_is_refused(tmp_path):
    with pytest.raises(models.ModelError, match="no such file"):
        models.import_gguf(tmp_path / "missing.gguf")


def test_garbage_gguf_is_refused_with_supported_architectures(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(models.ModelError, match="could not be read"):
        models.import_gguf(bad)
    assert not any(p.name.startswith(".") for p in models.paths.models_dir().iterdir()), "staging left behind"


def test_parameter_count_is_read_from_headers(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # Tied embeddings are stored once, so the header count equals the unique parameter count.
    assert models.describe(tiny_model_dir).parameters == sum(p.numel() for p in loaded.parameters())


def test_models_json_lists_imported_folders(tiny_model_dir, capsys):
    from engine.cli import main

    target = models.paths.models_dir() / "tiny"
    shutil.copytree(tiny_model_dir, target)
    (target / models.INFO_FILE).write_text(json.dumps({"name": "Tiny", "source": "local", "parameters": 5}))
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == ["Tiny"]
    assert {"name", "path", "parameters", "size_bytes"} <= set(listed[0])
    assert listed[0]["size_bytes"] > 100_000


@pytest.mark.slow
def test_starter_gguf_converts_loads_and_answers(real_data_dir, tunesmith_home):
    """The real path: the starter GGUF becomes a HF folder that chats with its own template."""
    cached = sorted((real_data_dir / "downloads").glob("*.gguf"))
    if not cached:
        pytest.skip("the starter GGUF was not downloaded (run `tunesmith-cli setup`)")
    downloads = tunesmith_home / "downloads"
    downloads.mkdir(exist_ok=True)
    (downloads / cached[0].name).symlink_to(cached[0])
    seen = []
    folder = models.prepare_starter(lambda message, fraction: seen.append(fraction))
    assert seen[-1] == 1.0 and models.starter_ready()
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    assert models.prepare_starter() == folder  # second call reuses the folder

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tokenizer.decode(inputs["input_ids"][0]).startswith("<|im_start|>system")
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0][inputs["input_ids"].shape[1]:])
