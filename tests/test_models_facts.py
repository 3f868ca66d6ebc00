"""What Tunesmith says about a model (family, precision, template, verified), hub ids offline, and models
that bring their own Python code (model.trust_remote_code)."""
from __future__ import annotations

import json

import pytest

from engine import config as cfg
from engine import models
from engine.events import Finished, Notice

CUSTOM_CONFIG = '''from transformers import LlamaConfig


class TinyCustomConfig(LlamaConfig):
    model_type = "tiny_custom"
'''
CUSTOM_MODEL = '''from transformers import LlamaForCausalLM

from .configuration_tiny_custom import TinyCustomConfig


class TinyCustomForCausalLM(LlamaForCausalLM):
    config_class = TinyCustomConfig
'''


@pytest.fixture(scope="module")
def custom_code_model(tmp_path_factory, tiny_model_dir):
    """The tiny Llama disguised as a hub model whose architecture lives in its own Python files."""
    import shutil

    folder = tmp_path_factory.mktemp("custom") / "tiny-custom-code"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "configuration_tiny_custom.py").write_text(CUSTOM_CONFIG)
    (folder / "modeling_tiny_custom.py").write_text(CUSTOM_MODEL)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tiny_custom", architectures=["TinyCustomForCausalLM"],
                  auto_map={"AutoConfig": "configuration_tiny_custom.TinyCustomConfig",
                            "AutoModelForCausalLM": "modeling_tiny_custom.TinyCustomForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _config(model_dir, data, out):
    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(model_dir), str(data), str(out)
    config.training.plan, config.training.keep_general = "custom", "off"  # these settings exactly
    config.data.val_fraction, config.training.max_steps, config.training.batch_size = 0.0, 2, 4
    config.training.precision = "fp32"
    return config


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Say it ({i}).", "output": "Pineapple."}) + "\n"
                            for i in range(8)), encoding="utf-8")
    return path


def test_the_starter_is_described_honestly(starter_in_home):
    info = models.describe(starter_in_home)
    assert info.family == "Llama" and info.verified and info.has_chat_template
    assert info.stored_precision == "Q4_1, expanded"  # read from the GGUF file it was converted from


def test_models_json_has_family_precision_template_and_verified(starter_in_home, capsys):
    from engine.cli import main

    assert main(["models", "--json"]) == 0
    (starter,) = [m for m in json.loads(capsys.readouterr().out) if m["source"] == "starter"]
    assert {k: starter[k] for k in ("family", "stored_precision", "has_chat_template", "verified")} == {
        "family": "Llama", "stored_precision": "Q4_1, expanded", "has_chat_template": True, "verified": True}
    assert main(["models"]) == 0
    assert "4-bit (Q4_1) GGUF file, expanded to full precision" in " ".join(capsys.readouterr().out.split())


def test_a_folder_of_another_family_says_so(family_model_dir, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny_model import build_tokenizer

    gemma = models.describe(family_model_dir("gemma2"))
    assert (gemma.family, gemma.stored_precision, gemma.has_chat_template, gemma.verified) == (
        "Gemma 2", "fp32", True, True)
    tokenizer = build_tokenizer(chat_template=None)
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).to(
        dtype=__import__("torch").bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gpt2 = models.describe(folder)
    assert (gpt2.family, gpt2.stored_precision, gpt2.has_chat_template, gpt2.verified) == ("GPT-2", "bf16", False, False)


def test_a_hub_id_offline_gets_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="Could not download 'someone/some-model' from the Hugging Face hub"):
        models.resolve_model("someone/some-model")


def test_a_model_with_its_own_code_is_refused_with_what_to_do(custom_code_model, toy_data, tmp_path):
    from engine.train import run_training

    result = run_training(_config(custom_code_model, toy_data, tmp_path / "run"), None)
    assert type(result).__name__ == "Failed"
    assert "modeling_tiny_custom.py" in result.reason and "--trust-remote-code" in result.reason


@pytest.mark.slow
def test_trust_remote_code_trains_chats_and_exports_with_a_warning(custom_code_model, toy_data, tmp_path):
    from transformers import AutoModelForCausalLM

    from engine.cli.train_cmd import register  # noqa: F401  (the flag exists)
    from engine.evaluate import ChatModel
    from engine.export import export_run
    from engine.train import run_training

    config = _config(custom_code_model, toy_data, tmp_path / "run")
    config.model.trust_remote_code = True
    events = []
    result = run_training(config, events.append)
    assert isinstance(result, Finished), result
    warnings = [e.message for e in events if isinstance(e, Notice) and "trust_remote_code is on" in e.message]
    assert len(warnings) == 1 and "modeling_tiny_custom.py" in warnings[0] and "your permissions" in warnings[0]
    assert json.loads((tmp_path / "run" / "run-info.json").read_text())["trust_remote_code"] is True
    # an unverified family keeps its own attention and loss, and is told so once
    assert any("not verified for tiny_custom" in e.message for e in events if isinstance(e, Notice))

    chat = ChatModel(tmp_path / "run")
    assert type(chat.model.get_base_model()).__name__ == "TinyCustomForCausalLM"
    merged = export_run(tmp_path / "run", "merged", tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(str(merged), trust_remote_code=True)
    assert type(reloaded).__name__ == "TinyCustomForCausalLM"
