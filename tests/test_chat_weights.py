"""Chat's 16/8-bit linear layers: the format chosen per CPU, rounding only, both sides in one model, text streaming."""
from __future__ import annotations

import pytest
import torch

from tests.eval_runs import CANARY_ANSWER, CANARY_QUESTION, canary_run

QUESTION = [{"role": "user", "content": CANARY_QUESTION}]
GREEDY = {"temperature": 0.0, "max_new_tokens": 12, "repetition_penalty": 1.0}
# Largest error of one output against fp32, relative to the output's scale: fp16 rounds each weight
# to 11 significant bits, bf16 weights, inputs and outputs to 8 (sums of rounded products grow
# like their square root).
TOLERANCE = {"fp16": 0.003, "bf16": 0.02}
FORMATS = [pytest.param(f, marks=pytest.mark.skipif(f not in __import__("engine.evaluate.chat_weights", fromlist=["x"])
                                                    .available_formats(), reason=f"this CPU cannot run {f}"))
           for f in ("fp16", "bf16")]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    return canary_run(tmp_path_factory, tiny_model_dir)


def test_auto_format_follows_what_the_cpu_runs(monkeypatch):
    from engine.evaluate import EvaluationError
    from engine.evaluate import chat_weights
    from engine.evaluate.chat_weights import FORMAT_ENV, chat_weight_format

    cpu = torch.device("cpu")
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    monkeypatch.setattr(chat_weights, "available_formats", lambda: ("fp16", "bf16"))
    assert chat_weight_format(cpu) == "fp16"
    assert chat_weight_format(cpu, "bf16") == "bf16"
    assert chat_weight_format(cpu, "fp32") == "fp32"
    monkeypatch.setattr(chat_weights, "available_formats", lambda: ())  # e.g. an ARM CPU: no fbgemm, no oneDNN bf16
    assert chat_weight_format(cpu) == "fp32"
    assert chat_weight_format(cpu, "bf16") == "fp32"
    monkeypatch.setattr(chat_weights, "available_formats", lambda: ("fp16",))
    monkeypatch.setenv(FORMAT_ENV, "fp32")
    assert chat_weight_format(cpu) == "fp32"
    monkeypatch.delenv(FORMAT_ENV)
    assert chat_weight_format(torch.device("cuda")) == "fp32", "GPUs keep the 16-bit model they load"
    monkeypatch.setenv(FORMAT_ENV, "int4")
    with pytest.raises(EvaluationError, match=f"{FORMAT_ENV}='int4'.*auto, fp32, fp16, bf16"):
        chat_weight_format(cpu)


@pytest.mark.parametrize("fmt", FORMATS)
def test_chat_linear_rounds_only_the_weights(fmt):
    from engine.evaluate.chat_weights import ChatLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=True)
    tuned = linear.weight.detach() + 0.05 * torch.randn(40, 96)
    layer = ChatLinear({"base": linear.weight, "tuned": tuned}, linear.bias, fmt)
    x = torch.randn(2, 5, 96)
    for side, weight in (("base", linear.weight.detach()), ("tuned", tuned)):
        layer.use(side)
        out, exact = layer(x), torch.nn.functional.linear(x, weight, linear.bias.detach())
        assert out.dtype == torch.float32 and out.shape == exact.shape
        assert (out - exact).abs().max() <= TOLERANCE[fmt] * exact.abs().max(), side
        # The layer multiplies by exactly its dequantized weight (the rest is fp32 arithmetic).
        assert torch.allclose(out, torch.nn.functional.linear(x, layer.dequantized(side), linear.bias.detach()),
                              atol=2e-2 if fmt == "bf16" else 1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_lora_layers_fold_into_a_base_and_a_tuned_copy(fmt, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    from engine.evaluate.chat_weights import ChatLinear, convert_for_chat

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(0, 200, (1, 12))
    with torch.no_grad():
        tuned_logits = model(input_ids=ids).logits
        with model.disable_adapter():
            base_logits = model(input_ids=ids).logits
    layers = convert_for_chat(model, fmt)
    assert not any(isinstance(m, LoraLayer) for m in model.modules()), "every LoRA layer is folded"
    assert isinstance(model.get_base_model().lm_head, ChatLinear)
    assert sum(len(layer.packed) == 2 for layer in layers) == sum(1 for layer in layers) - 1  # lm_head has no LoRA
    with torch.no_grad():
        for side, expected in (("tuned", tuned_logits), ("base", base_logits)):
            for layer in layers:
                layer.use(side)
            got = model(input_ids=ids).logits
            assert (got - expected).abs().max() <= 2 * TOLERANCE[fmt] * expected.abs().max(), side
    assert (tuned_logits - base_logits).abs().max() > 10 * (got - base_logits).abs().max(), \
        "the sides differ by far more than the rounding"


@pytest.mark.parametrize("fmt", FORMATS)
def test_chat_in_low_bit_weights_answers_like_fp32(fmt, lora_run):
    from engine.evaluate import ChatModel, GenerationSettings

    settings = GenerationSettings.from_dict(GREEDY)
    exact = ChatModel(lora_run, weights="fp32")
    fast = ChatModel(lora_run, weights=fmt)
    assert fast.loaded.weight_format == fmt and fast.loaded.chat_layers
    tuned = fast.reply(QUESTION, "tuned", settings)
    assert tuned.startswith(CANARY_ANSWER[:20])
    assert tuned == exact.reply(QUESTION, "tuned", settings)
    assert fast.reply(QUESTION, "base", settings) == exact.reply(QUESTION, "base", settings)
    assert "pineapple" in fast.reply(QUESTION, "tuned", settings), "the tuned weights are back after a base answer"


def test_text_stream_pieces_add_up_to_the_decoded_answer(lora_run):
    from engine.evaluate.generate import TextStream
    from engine.evaluate.loading import load_run_tokenizer
    from engine.evaluate.runfolder import open_run

    tokenizer = load_run_tokenizer(open_run(lora_run))
    text = "Tea: héllo wörld, 🍵 twice 🍵!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    class NoBackend:  # a tokenizer without the tokenizers library's Rust backend
        def decode(self, ids, skip_special_tokens=True):
            return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    for tok in (tokenizer, NoBackend()):
        stream = TextStream(tok)
        pieces = [stream.add([i]) for i in ids] + [stream.finish()]
        assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
        assert not any("\ufffd" in piece for piece in pieces), "a split character is held back, not shown broken"
