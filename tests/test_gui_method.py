"""The Method view: model picker, method table, settings with warnings, hardware panel, config files."""
from __future__ import annotations

import pytest

from engine import config as cfg
from gui.controller import Controller
from gui.state import default_config
from gui.views.method_view import MethodView
from gui.widgets.method_table import METHODS

WAIT_MS = 30000


@pytest.fixture
def controller(tiny_model_dir):
    config = default_config()
    config.model.name = str(tiny_model_dir)
    return Controller(config)


def make_view(qtbot, controller) -> MethodView:
    view = MethodView(controller)
    qtbot.addWidget(view)
    view.resize(1280, 760)
    return view


def test_method_switch_updates_learning_rate_and_explanation(qtbot, controller):
    view = make_view(qtbot, controller)
    assert view.methods.explanation.text().startswith("LoRA:")
    for method in ("full", "prefix", "prompt", "qlora", "lora"):
        row = list(METHODS).index(method)
        view.methods.table.selectRow(row)
        assert controller.config.method.name == method
        assert controller.config.training.lr == cfg.METHOD_DEFAULTS[method]["training.lr"]
        assert METHODS[method][5] in view.methods.explanation.text()
        # The learning-rate box shows the new default too.
        assert view.form.editors["training.lr"].value() == pytest.approx(controller.config.training.lr)


def test_settings_for_other_methods_are_hidden(qtbot, controller):
    view = make_view(qtbot, controller)
    view.show()
    assert view.form.editors["method.lora_r"].isVisible()
    assert not view.form.editors["method.num_virtual_tokens"].isVisible()
    controller.set_method("prompt")
    assert not view.form.editors["method.lora_r"].isVisible()
    assert view.form.editors["method.num_virtual_tokens"].isVisible()


def test_tooltips_come_from_the_config_help(qtbot, controller):
    view = make_view(qtbot, controller)
    tip = view.form.editors["training.lr"].toolTip()
    assert cfg.field_info("training", "lr")["help"] in tip
    assert "Usually between" in tip


def test_out_of_range_value_warns_in_plain_words(qtbot, controller):
    view = make_view(qtbot, controller)
    view.show()
    view.plan.custom_button.click()  # the learning rate is the user's own only with their own settings
    warning = view.form.warnings["training.lr"]
    assert not warning.isVisible()
    view.form.editors["training.lr"].setValue(0.05)
    assert controller.config.training.lr == 0.05
    assert warning.isVisible() and "outside the usual" in warning.text()
    view.form.editors["training.lr"].setValue(1e-4)
    assert not warning.isVisible()
    view.form.editors["training.epochs"].setValue(50)
    assert "memorise" in view.form.warnings["training.epochs"].text()


def test_yaml_is_what_the_cli_reads(qtbot, controller, tmp_path, capsys):
    view = make_view(qtbot, controller)
    controller.set_method("full")
    view.form.editors["training.epochs"].setValue(2)
    view.form.editors["method.lora_r"].setValue(8)
    # The YAML shown and the file saved are the same document, and loading it gives the same config.
    shown = view.yaml_text()
    target = tmp_path / "run.yaml"
    view.save_config(str(target))
    assert target.read_text(encoding="utf-8") == shown
    loaded = cfg.load(target)  # what `tunesmith-cli train --config` reads
    assert cfg.to_dict(loaded) == cfg.to_dict(controller.config)
    assert loaded.method.name == "full" and loaded.training.epochs == 2 and loaded.method.lora_r == 8
    assert cfg.validate(loaded) is not None  # no errors: the CLI accepts it as it is
    from engine.cli import main as cli_main

    capsys.readouterr()
    assert cli_main(["train", "--config", str(target), "--print-config"]) == 0
    assert capsys.readouterr().out.strip() == shown.strip()
    from PySide6.QtWidgets import QPlainTextEdit

    dialog = view.show_yaml()
    assert dialog.findChild(QPlainTextEdit).toPlainText() == shown
    dialog.close()


def test_open_config_replaces_the_settings(qtbot, controller, tmp_path, tiny_model_dir):
    view = make_view(qtbot, controller)
    other = default_config()
    other.model.name = str(tiny_model_dir)
    cfg.apply_method_defaults(other, "prefix")
    other.training.batch_size = 4
    path = tmp_path / "other.yaml"
    cfg.save(other, path)
    with qtbot.waitSignal(view.model_picker.modelReady, timeout=WAIT_MS):
        view.open_config(str(path))
    assert controller.config.method.name == "prefix"
    assert view.form.editors["training.batch_size"].value() == 4
    assert view.methods.explanation.text().startswith("Prefix tuning:")


def test_open_bad_config_explains(qtbot, controller, tmp_path, monkeypatch):
    view = make_view(qtbot, controller)
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  speed: 3\n", encoding="utf-8")
    shown = []
    monkeypatch.setattr("gui.views.method_view.QMessageBox.warning", lambda *args: shown.append(args[2]))
    before = cfg.to_dict(controller.config)
    view.open_config(str(path))
    assert shown and "speed" in shown[0]
    assert cfg.to_dict(controller.config) == before


def test_model_folder_is_resolved_off_the_qt_thread(qtbot, controller, tiny_model_dir):
    view = make_view(qtbot, controller)
    with qtbot.waitSignal(view.model_picker.modelReady, timeout=WAIT_MS) as ready:
        view.model_picker.choose(str(tiny_model_dir))
    assert ready.args[0] == str(tiny_model_dir.resolve())
    assert controller.model_dir == str(tiny_model_dir.resolve())
    assert "Ready" in view.model_picker.status.text()
    assert view.model_picker.source.currentData() == "folder"


def test_missing_gguf_file_is_explained(qtbot, controller, tmp_path):
    view = make_view(qtbot, controller)
    missing = tmp_path / "nothing.gguf"
    with qtbot.waitSignal(view.model_picker.modelFailed, timeout=WAIT_MS) as failed:
        view.model_picker.choose(str(missing))
    assert "nothing.gguf" in failed.args[0]
    assert "Traceback" not in view.model_picker.status.text()
    assert controller.model_dir == ""


def test_hardware_panel_estimates_memory_and_trainable_share(qtbot, controller, tiny_model_dir):
    view = make_view(qtbot, controller)
    panel = view.hardware
    qtbot.waitUntil(lambda: panel.hardware is not None, timeout=WAIT_MS)
    assert "memory" in panel.machine.text()
    controller.set_model_dir(str(tiny_model_dir))
    qtbot.waitUntil(lambda: panel.last_estimate is not None, timeout=WAIT_MS)
    lora = panel.last_estimate
    assert lora.peak_bytes > 0 and 0 < lora.trainable < lora.total
    assert "GB" in panel.memory.text() and "%" in panel.params.text()
    controller.set_method("full")
    qtbot.waitUntil(lambda: panel.last_estimate is not lora, timeout=WAIT_MS)
    full = panel.last_estimate
    assert full.trainable == full.total
    # Longer examples need more memory for activations: the estimate follows the setting.
    controller.set_value("data.max_length", 4096)
    qtbot.waitUntil(lambda: panel.last_estimate is not full, timeout=WAIT_MS)
    assert panel.last_estimate.peak_bytes > full.peak_bytes


def test_qlora_without_a_gpu_says_it_falls_back(qtbot, controller):
    view = make_view(qtbot, controller)
    view.show()
    panel = view.hardware
    qtbot.waitUntil(lambda: panel.hardware is not None, timeout=WAIT_MS)
    controller.set_method("qlora")
    if panel.hardware.device == "cuda":
        assert not panel.method_note.isVisible()
    else:
        assert panel.method_note.isVisible() and "plain LoRA" in panel.method_note.text()
    controller.set_method("lora")
    assert not panel.method_note.isVisible()


def test_the_picker_says_family_size_precision_and_template(qtbot, controller, tiny_model_dir):
    view = make_view(qtbot, controller)
    with qtbot.waitSignal(view.model_picker.modelReady, timeout=WAIT_MS):
        view.model_picker.choose(str(tiny_model_dir))
    text = view.model_picker.status.text()
    assert "Llama family" in text and "0.11 million parameters" in text and "Stored as fp32" in text
    assert "has its own chat template" in text
    assert view.model_picker.warning.isHidden()
    starter = view.model_picker.source.itemText(view.model_picker.source.findData("starter"))
    assert "4-bit Q4_1 copy expanded to full precision" in starter


def test_a_family_outside_the_matrix_gets_a_plain_warning(qtbot, controller, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(chat_template=None)
    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    view = make_view(qtbot, controller)
    with qtbot.waitSignal(view.model_picker.modelReady, timeout=WAIT_MS):
        view.model_picker.choose(str(folder))
    warning = view.model_picker.warning
    assert warning.text().startswith("GPT-2 models are not among the families Tunesmith verifies")
    assert not warning.isHidden() and warning.property("role") == "warning"
    assert "no chat template (a base model)" in view.model_picker.status.text()
