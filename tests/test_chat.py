"""Side-by-side chat: one model object serves base and tuned, streaming, settings, stop, worker."""
from __future__ import annotations

import gc
import queue
import threading

import pytest

from engine.config import ConfigError
from engine.events import Failed, GenerationDone, Notice, Token
from tests.eval_runs import CANARY_ANSWER, CANARY_QUESTION, canary_run, overtrained_run

GREEDY = {"temperature": 0.0, "max_new_tokens": 12, "repetition_penalty": 1.0}
QUESTION = [{"role": "user", "content": CANARY_QUESTION}]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    return canary_run(tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def chat(lora_run):
    from engine.evaluate import ChatModel

    return ChatModel(lora_run)


def _llama_models() -> int:
    from transformers import LlamaForCausalLM

    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, LlamaForCausalLM))


def test_tuned_streams_the_canary_and_base_does_not_from_one_model(lora_run):
    from engine.evaluate import ChatModel, GenerationSettings

    before = _llama_models()
    chat = ChatModel(lora_run, weights="fp32")  # the 16/8-bit chat layers: tests/test_chat_weights.py
    assert _llama_models() - before == 1, "base and tuned must share one loaded model"
    assert chat.shares_weights
    settings = GenerationSettings.from_dict(GREEDY)
    with chat.loaded.side("base") as base_model:
        assert base_model is chat.model
        original = {name: p.detach().clone() for name, p in base_model.named_parameters() if "lora_" not in name}

    tuned_pieces = list(chat.stream(QUESTION, "tuned", settings))
    base_pieces = list(chat.stream(QUESTION, "base", settings))

    assert len(tuned_pieces) > 3, "the answer must arrive in pieces, not at once"
    assert "".join(tuned_pieces).startswith(CANARY_ANSWER[:20])
    assert "pineapple" not in "".join(base_pieces)
    # The adapter is back on after a "base" answer.
    assert "pineapple" in chat.reply(QUESTION, "tuned", settings)
    # On the CPU the LoRA update is merged into the weights for speed (already while loading, so the
    # first answer is not slowed by it) and taken out again for "base": the base weights come back.
    assert chat.loaded.merge_for_speed
    chat.reply(QUESTION, "base", settings)
    for name, p in chat.model.named_parameters():
        if name in original:
            assert (p - original[name]).abs().max() < 1e-5, name
    assert _llama_models() - before == 1, "switching sides must not copy the model"


def test_chat_uses_the_training_template(chat):
    from engine.templates import prompt_ids

    ids = chat.prompt_ids(QUESTION)
    assert ids == prompt_ids(QUESTION, chat.tokenizer)
    assert chat.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_stop_event_ends_the_answer_within_a_token(chat):
    from engine.evaluate import GenerationSettings

    stop = threading.Event()
    generation = chat.stream(QUESTION, "tuned", GenerationSettings.from_dict({**GREEDY, "max_new_tokens": 200}), stop)
    for _ in generation:
        stop.set()
    assert generation.stopped
    assert generation.tokens <= 3
    assert generation.first_token_s is not None and generation.seconds >= generation.first_token_s


def test_sampling_repeats_with_the_same_seed(chat):
    from engine.evaluate import GenerationSettings

    settings = GenerationSettings.from_dict({"temperature": 1.5, "top_p": 1.0, "max_new_tokens": 10, "seed": 5})
    first, second = (chat.reply(QUESTION, "base", settings) for _ in range(2))
    assert first == second
    other = chat.reply(QUESTION, "base", GenerationSettings.from_dict({**settings.to_dict(), "seed": 6}))
    assert other != first


def test_settings_refuse_bad_values_in_plain_words():
    from engine.evaluate import GenerationSettings
    from engine.evaluate.settings import setting_help

    with pytest.raises(ConfigError, match="temperature = 9.*between 0.0 and 5.0"):
        GenerationSettings.from_dict({"temperature": 9})
    with pytest.raises(ConfigError, match="Unknown generation setting 'colour'"):
        GenerationSettings.from_dict({"colour": 1})
    assert GenerationSettings.from_dict({"temperature": "0"}).greedy
    assert "same answer" in setting_help("temperature")["help"]


def test_conversation_must_end_with_the_user(chat):
    from engine.evaluate import EvaluationError

    with pytest.raises(EvaluationError, match="end with your message"):
        chat.reply(QUESTION + [{"role": "assistant", "content": "hi"}])
    with pytest.raises(EvaluationError, match="empty"):
        chat.reply([])


def test_long_conversations_drop_the_oldest_turns(chat):
    turns = []
    for number in range(60):
        turns += [{"role": "user", "content": "The quick brown fox " * 4 + str(number)},
                  {"role": "assistant", "content": "jumps over the lazy dog " * 4}]
    ids = chat.prompt_ids(turns + QUESTION, max_new_tokens=100)
    assert len(ids) <= chat._context_limit() - 100
    assert chat.tokenizer.decode(ids).rstrip().endswith(f"{CANARY_QUESTION}<|im_end|>\n<|im_start|>assistant")


def test_held_out_example_gives_prompt_and_reference(chat):
    example = chat.held_out_example(index=0)
    assert example.messages == QUESTION
    assert example.reference == CANARY_ANSWER
    assert chat.held_out_example(index=1).reference == "tac"  # the plain-text row is skipped


def test_full_fine_tuning_loads_the_base_separately(tmp_path_factory, tiny_model_dir):
    from engine.evaluate import ChatModel, GenerationSettings

    chat = ChatModel(overtrained_run(tmp_path_factory, tiny_model_dir))
    assert not chat.shares_weights
    settings = GenerationSettings.from_dict(GREEDY)
    assert "pineapple" in chat.reply(QUESTION, "tuned", settings)
    assert "pineapple" not in chat.reply(QUESTION, "base", settings)


def test_not_a_run_folder_is_a_plain_error(tmp_path):
    from engine.evaluate import ChatModel, EvaluationError

    with pytest.raises(EvaluationError, match="not a Tunesmith run folder"):
        ChatModel(tmp_path)


def _next(events: queue.Queue, kind):
    """Events up to and including the next one of `kind` (the worker answers within seconds)."""
    found = []
    while not found or not isinstance(found[-1], kind):
        found.append(events.get(timeout=60))
    return found


def test_chat_worker_serves_both_sides_stops_and_quits(lora_run):
    from engine.evaluate.worker import chat_main

    requests, events = queue.Queue(), queue.Queue()
    worker = threading.Thread(target=chat_main, args=(str(lora_run), requests, events))
    worker.start()
    ready = _next(events, Notice)[0]
    assert ready.message.startswith("ready:") and "one shared copy" in ready.message

    requests.put({"request": 3, "messages": QUESTION, "sides": ["base", "tuned"], "settings": GREEDY})
    received = _next(events, GenerationDone) + _next(events, GenerationDone)
    tokens = {side: "".join(e.text for e in received if isinstance(e, Token) and e.side == side)
              for side in ("base", "tuned")}
    assert "pineapple" in tokens["tuned"] and "pineapple" not in tokens["base"]
    done = [e for e in received if isinstance(e, GenerationDone)]
    assert [(d.request, d.side) for d in done] == [(3, "base"), (3, "tuned")]
    assert all(d.tokens > 0 and d.first_token_s is not None for d in done)

    requests.put({"request": 4, "messages": [], "side": "tuned"})  # a bad request: Failed, and the server goes on
    assert "empty" in _next(events, Failed)[-1].reason

    requests.put({"request": 5, "messages": QUESTION, "side": "base", "settings": {"max_new_tokens": 500}})
    first = _next(events, Token)[-1]
    requests.put({"type": "stop"})
    stopped = _next(events, GenerationDone)[-1]
    assert first.request == stopped.request == 5 and stopped.tokens < 500

    requests.put({"type": "quit"})
    worker.join(timeout=30)
    assert not worker.is_alive()


def test_chat_worker_ends_when_the_host_sets_its_stop_event(lora_run):
    from engine.evaluate.worker import chat_main

    requests, events, shutdown = queue.Queue(), queue.Queue(), threading.Event()
    worker = threading.Thread(target=chat_main, args=(str(lora_run), requests, events, shutdown))
    worker.start()
    assert _next(events, Notice)[0].message.startswith("ready:")
    shutdown.set()
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_chat_worker_reports_a_bad_run_folder(tmp_path):
    from engine.evaluate.worker import chat_main

    events = queue.Queue()
    chat_main(str(tmp_path), queue.Queue(), events)
    failure = events.get_nowait()
    assert isinstance(failure, Failed) and "not a Tunesmith run folder" in failure.reason and not failure.log_tail


def test_cli_chat_prompt_and_base(lora_run, capsys):
    from engine.cli import main

    assert main(["chat", str(lora_run), "--prompt", CANARY_QUESTION, "--temperature", "0",
                 "--max-new-tokens", "12"]) == 0
    assert "pineapple" in capsys.readouterr().out
    assert main(["chat", str(lora_run), "--prompt", CANARY_QUESTION, "--base", "--temperature", "0",
                 "--max-new-tokens", "12"]) == 0
    assert "pineapple" not in capsys.readouterr().out


def test_cli_chat_interactive_reset_and_quit(lora_run, capsys, monkeypatch):
    from engine.cli import main

    lines = iter(["/reset", CANARY_QUESTION, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", str(lora_run), "--temperature", "0", "--max-new-tokens", "12"]) == 0
    out = capsys.readouterr().out
    assert "(new conversation)" in out and "tuned> The secret word is pineapple" in out


def test_cli_chat_bad_folder_exits_2(tmp_path, capsys):
    from engine.cli import main

    assert main(["chat", str(tmp_path / "missing"), "--prompt", "hi"]) == 2
    assert "no such run folder" in capsys.readouterr().err
