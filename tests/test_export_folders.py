"""Adapter and merged-model exports of tiny runs: what they hold, that they load, that they match."""
from __future__ import annotations

import json

import pytest
import torch

from engine.export import ExportError, export_run
from tests.export_runs import last_logits, make_full_run, make_lora_run, make_prefix_run

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    return make_lora_run(tmp_path_factory.mktemp("runs") / "lora-run", tiny_model_dir)


def _base_logits(base_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
    return last_logits(model, AutoTokenizer.from_pretrained(str(base_dir)), PROMPT)


def _adapter_logits(adapter_dir, base_dir, tokenizer_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    tuned = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    return last_logits(tuned, AutoTokenizer.from_pretrained(str(tokenizer_dir)), PROMPT)


def test_adapter_export_is_a_loadable_peft_folder_with_the_training_tokenizer(lora_run, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    out = export_run(lora_run, "adapter", tmp_path / "adapter")

    assert out == tmp_path / "adapter"
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert AutoTokenizer.from_pretrained(str(out)).chat_template == \
        AutoTokenizer.from_pretrained(str(lora_run / "tokenizer")).chat_template
    exported = _adapter_logits(out, tiny_model_dir, out)
    trained = _adapter_logits(lora_run / "adapter", tiny_model_dir, lora_run / "tokenizer")
    assert torch.equal(exported, trained)


def test_merged_export_loads_with_plain_transformers_and_matches_base_plus_adapter(lora_run, tiny_model_dir,
                                                                                    tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    messages = []
    out = export_run(lora_run, "merged", tmp_path / "merged", progress=lambda m, f: messages.append((m, f)))

    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert list(out.glob("*.safetensors"))
    merged_logits = last_logits(merged, tokenizer, PROMPT)
    adapter_logits = _adapter_logits(lora_run / "adapter", tiny_model_dir, lora_run / "tokenizer")
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-5), "merging must not change the answers"
    assert not torch.allclose(merged_logits, _base_logits(tiny_model_dir), atol=1e-3), "the adapter had no effect"
    fractions = [f for _, f in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert not any(m.startswith("Note:") for m, _ in messages)


def test_qlora_run_is_merged_into_the_full_precision_base_and_says_so(tmp_path, tiny_model_dir):
    run = make_lora_run(tmp_path / "qlora-run", tiny_model_dir, method="qlora")
    messages = []

    out = export_run(run, "merged", tmp_path / "merged", progress=lambda m, f: messages.append(m))

    notes = [m for m in messages if m.startswith("Note:")]
    assert len(notes) == 1 and "full-precision" in notes[0]
    info = json.loads((out / "tunesmith-export.json").read_text())
    assert info["method"] == "qlora" and "full-precision" in info["notices"][0]


def test_full_fine_tune_exports_merged_but_has_no_adapter(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = make_full_run(tmp_path / "full-run", tiny_model_dir)

    out = export_run(run, "merged", tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    exported = last_logits(AutoModelForCausalLM.from_pretrained(str(out)).eval(), tokenizer, PROMPT)
    trained = last_logits(AutoModelForCausalLM.from_pretrained(str(run / "model")).eval(), tokenizer, PROMPT)
    assert torch.equal(exported, trained)
    with pytest.raises(ExportError, match="no adapter"):
        export_run(run, "adapter", tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_prefix_tuning_exports_as_adapter_only(tmp_path, tiny_model_dir):
    run = make_prefix_run(tmp_path / "prefix-run", tiny_model_dir)

    assert (export_run(run, "adapter", tmp_path / "adapter") / "adapter_config.json").is_file()
    for target in ("merged", "gguf-f16"):
        with pytest.raises(ExportError, match="virtual tokens"):
            export_run(run, target, tmp_path / target)
        assert not (tmp_path / target).exists()


@pytest.mark.parametrize("breakage, message", [
    (lambda run: (run / "run-info.json").unlink(), "not a Tunesmith run folder"),
    (lambda run: (run / "adapter" / "adapter_config.json").unlink(), "no trained adapter yet"),
])
def test_damaged_run_folders_get_a_plain_message(tmp_path, tiny_model_dir, breakage, message):
    run = make_lora_run(tmp_path / "run", tiny_model_dir)
    breakage(run)
    with pytest.raises(ExportError, match=message):
        export_run(run, "merged", tmp_path / "merged")


def test_missing_base_model_names_the_path(tmp_path, lora_run):
    import shutil

    copy = tmp_path / "moved-run"
    shutil.copytree(lora_run, copy)
    info = json.loads((copy / "run-info.json").read_text())
    info["base_model_path"] = str(tmp_path / "gone")
    (copy / "run-info.json").write_text(json.dumps(info))
    with pytest.raises(ExportError, match="no longer at .*gone"):
        export_run(copy, "merged", tmp_path / "merged")


def test_a_folder_of_other_files_is_never_written_into_even_with_force(lora_run, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    (out / "my-other-model").mkdir()

    for overwrite in (False, True):
        with pytest.raises(ExportError, match="not an earlier Tunesmith export"):
            export_run(lora_run, "adapter", out, overwrite=overwrite)
    assert (out / "precious.txt").read_text() == "keep me" and (out / "my-other-model").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["my-other-model", "precious.txt"]


def test_force_replaces_only_the_files_an_earlier_export_wrote(lora_run, tmp_path):
    out = tmp_path / "exported"
    export_run(lora_run, "merged", out)
    written = json.loads((out / "tunesmith-export.json").read_text())["files"]
    assert "model.safetensors" in written and "tunesmith-export.json" in written
    (out / "notes.txt").write_text("my notes about this model")

    with pytest.raises(ExportError, match="already exists"):
        export_run(lora_run, "adapter", out)
    export_run(lora_run, "adapter", out, overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert (out / "notes.txt").read_text() == "my notes about this model"  # the user's file stays
    assert "adapter_config.json" in names and "model.safetensors" not in names  # the merged export's files went
    assert names == set(json.loads((out / "tunesmith-export.json").read_text())["files"]) | {"notes.txt"}


def test_a_gguf_file_export_replaces_only_its_file_and_modelfile(lora_run, tmp_path):
    folder = tmp_path / "shelf"
    folder.mkdir()
    (folder / "other.gguf").write_text("someone else's model")
    target = folder / "mine.gguf"
    target.write_text("an old export")
    with pytest.raises(ExportError, match="already exists"):
        export_run(lora_run, "gguf-f16", target, verify=False)
    export_run(lora_run, "gguf-f16", target, overwrite=True, verify=False)
    assert (folder / "other.gguf").read_text() == "someone else's model"
    assert target.stat().st_size > 1000 and (folder / "Modelfile").is_file()


def test_unknown_target_is_refused(lora_run, tmp_path):
    with pytest.raises(ExportError, match="adapter, merged, gguf-f16, gguf-q8_0"):
        export_run(lora_run, "onnx", tmp_path / "x")
