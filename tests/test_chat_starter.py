"""Chat on the real starter model (SmolLM2-135M-Instruct) with a LoRA adapter: template, sides, speed numbers."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def starter_run(starter_model_dir, tmp_path_factory):
    """A run folder whose adapter is freshly initialised LoRA (its update is zero: tuned equals base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.templates import load_tokenizer

    run = tmp_path_factory.mktemp("starter-run")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(starter_model_dir)),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    model.save_pretrained(run / "adapter")
    load_tokenizer(starter_model_dir).save_pretrained(run / "tokenizer")
    info = {"base_model_path": str(starter_model_dir), "method": "lora", "template": "auto"}
    (run / "run-info.json").write_text(json.dumps(info), encoding="utf-8")
    return run


def test_starter_answers_in_its_own_template_on_both_sides(starter_run):
    from engine.evaluate import ChatModel, GenerationSettings

    chat = ChatModel(starter_run, device="cpu")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    assert chat.tokenizer.decode(chat.prompt_ids(question)).endswith("<|im_start|>assistant\n")
    settings = GenerationSettings(temperature=0.0, max_new_tokens=24)
    generation = chat.stream(question, "tuned", settings)
    tuned = "".join(generation)
    assert "Paris" in tuned
    # A zero LoRA update: the adapter-off side must give the very same greedy answer.
    assert chat.reply(question, "base", settings) == tuned
    # Ends by itself at the end-of-turn token, well before the limit, and shows no template markers.
    assert generation.tokens < settings.max_new_tokens and "<|im_end|>" not in tuned
    print(f"starter first token {generation.first_token_s:.3f} s, {generation.tokens} tokens in "
          f"{generation.seconds:.2f} s")
