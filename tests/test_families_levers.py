"""Which faster paths a model gets: the allow-list's decisions, the start-of-run check, LoRA targets."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine import config as cfg
from engine import families
from engine.train import attention
from engine.train.lever_check import check_levers
from engine.train.loss import TokenLoss, uses_packed_kernel
from engine.train.methods import attention_for, load_model
from tests.test_families_loss import run_config
from tests.tiny_families import family_examples


def _config(**fields):
    return SimpleNamespace(**fields)


def test_the_kernel_is_allowed_only_for_listed_families_without_features_it_leaves_out():
    assert families.kernel_problem(_config(model_type="llama"), 512) is None
    # a window at least as long as any example changes nothing
    assert families.kernel_problem(_config(model_type="mistral", sliding_window=4096), 512) is None
    assert "sliding window of 4096" in families.kernel_problem(_config(model_type="mistral", sliding_window=4096), 8192)
    # Qwen2 configs carry a window that is switched off
    assert families.kernel_problem(_config(model_type="qwen2", sliding_window=32, use_sliding_window=False), 512) is None
    gemma3 = _config(model_type="gemma3_text", sliding_window=512, layer_types=["sliding_attention", "full_attention"])
    assert families.kernel_problem(gemma3, 512) is None and families.kernel_problem(gemma3, 1024)
    assert "soft-caps" in families.kernel_problem(_config(model_type="gemma2", attn_logit_softcapping=50.0), 512)
    # unknown families keep their own attention, whatever their configuration says
    assert "not verified for Granite" in families.kernel_problem(_config(model_type="granite"), 512)


def test_the_lighter_loss_is_allowed_only_for_listed_families_with_plain_logits():
    assert families.loss_problem(_config(model_type="qwen3")) is None
    assert "soft-caps" in families.loss_problem(_config(model_type="gemma2", final_logit_softcapping=30.0))
    assert families.loss_problem(_config(model_type="gemma3_text", final_logit_softcapping=None)) is None
    # Granite divides its logits by logits_scaling: not on the list, so the model's own forward computes them
    assert "not verified" in families.loss_problem(_config(model_type="granite", logits_scaling=8.0))


def test_attention_for_a_model_keeps_its_own_where_the_kernel_is_not_allowed(family_model_dir):
    from transformers import AutoConfig

    config = cfg.RunConfig()
    llama = AutoConfig.from_pretrained(str(family_model_dir("llama")))
    gemma2 = AutoConfig.from_pretrained(str(family_model_dir("gemma2")))
    assert attention_for(config, llama) == attention.PACKED_SDPA
    assert attention_for(config, gemma2) is None  # transformers picks: eager for Gemma 2, which has no SDPA
    config.training.attention = "eager"
    assert attention_for(config, gemma2) == "eager"


def _loaded(family_model_dir, family, method="lora", attn=None):
    from transformers import AutoModelForCausalLM

    from engine.templates import load_tokenizer

    folder = family_model_dir(family)
    tokenizer = load_tokenizer(folder)
    config = run_config(method)
    if attn is None:
        model = load_model(config, folder, torch.device("cpu"), torch.float32).model
    else:  # bypass the allow-list, as a family wrongly listed would
        model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation=attn)
    return config, model, family_examples(tokenizer, config.data.max_length), tokenizer.pad_token_id


def test_the_start_check_turns_off_a_kernel_that_ignores_the_sliding_window(family_model_dir):
    config, model, examples, pad_id = _loaded(family_model_dir, "gemma3", attn=attention.register())
    loss = TokenLoss(model)
    assert uses_packed_kernel(model)
    notice = check_levers(loss, config, examples, pad_id, "fp32")
    assert not uses_packed_kernel(model) and model.config._attn_implementation == "sdpa"
    assert "on a first batch the faster ones gave a loss" in notice
    assert check_levers(loss, config, examples, pad_id, "fp32").count("on a first batch") == 0  # now they agree


def test_the_start_check_turns_off_a_loss_that_ignores_soft_capped_logits(family_model_dir, monkeypatch):
    from engine.train import loss as loss_module

    config, model, examples, pad_id = _loaded(family_model_dir, "gemma2")
    monkeypatch.setattr(loss_module, "loss_problem", lambda model_config: None)  # as if Gemma 2 were listed
    loss = TokenLoss(model)
    assert loss.fast
    notice = check_levers(loss, config, examples, pad_id, "fp32")
    assert not loss.fast
    assert "on a first batch" in notice and "Gemma 2" in notice


def test_a_listed_family_passes_the_check_silently(family_model_dir):
    config, model, examples, pad_id = _loaded(family_model_dir, "llama")
    loss = TokenLoss(model)
    assert check_levers(loss, config, examples, pad_id, "fp32") is None
    assert loss.fast and loss.can_pack and uses_packed_kernel(model)


def test_gemma2_is_told_once_why_it_trains_with_its_own_attention_and_loss(family_model_dir):
    config, model, examples, pad_id = _loaded(family_model_dir, "gemma2")
    notice = check_levers(TokenLoss(model), config, examples, pad_id, "fp32")
    assert notice.startswith("This Gemma 2 model trains with its own attention")
    assert "soft-caps its attention scores" in notice and "soft-caps its output logits" in notice


def test_lora_finds_the_linear_layers_of_a_model_not_shaped_like_llama(family_model_dir):
    from peft.tuners.tuners_utils import BaseTunerLayer

    config, model, _, _ = _loaded(family_model_dir, "gpt_neox")
    adapted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)}
    assert adapted == {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}  # not the output layer


def test_lora_targets_the_model_does_not_have_are_named_with_the_ones_it_has(family_model_dir):
    config = run_config("lora")
    config.method.target_modules = "q_proj,v_proj"
    with pytest.raises(cfg.ConfigError, match="query_key_value") as error:
        load_model(config, family_model_dir("gpt_neox"), torch.device("cpu"), torch.float32)
    assert "q_proj,v_proj" in str(error.value) and "embed_out" not in str(error.value)
