"""Preference pairs: every layout users have, the rows refused with their numbers, rendering and the split."""
from __future__ import annotations

import json

import pytest

from engine.config import RunConfig
from engine.data.errors import DataError
from engine.data.inspect import inspect_file
from engine.data.preference import DIFFERENT_PROMPTS, SAME_ANSWER, PreferencePair
from engine.data.preference_build import answer_token_counts, build_preference_data, render_pair
from engine.templates import IGNORE_INDEX, load_tokenizer
from tests.preference_data import write_preference_file


def write_rows(tmp_path, rows, name="pairs.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def only_pair(tmp_path, row, **options) -> PreferencePair:
    report = inspect_file(write_rows(tmp_path, [row]), **options)
    assert report.format == "preference" and report.rejected == [], report.rejected
    return report.examples[0]


USER_HI = [{"role": "user", "content": "Hi?"}]


@pytest.mark.parametrize("row", [
    {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
    # TRL's conversational layout: message lists, with or without the prompt repeated in the answers.
    {"prompt": USER_HI, "chosen": [{"role": "assistant", "content": "Hello!"}],
     "rejected": [{"role": "assistant", "content": "Go away."}]},
    {"prompt": USER_HI, "chosen": USER_HI + [{"role": "assistant", "content": "Hello!"}],
     "rejected": USER_HI + [{"role": "assistant", "content": "Go away."}]},
    # LLaMA-Factory's ShareGPT DPO demo: the answers are single {from, value} turns.
    {"conversations": [{"from": "human", "value": "Hi?"}], "chosen": {"from": "gpt", "value": "Hello!"},
     "rejected": {"from": "gpt", "value": "Go away."}},
    # LLaMA-Factory's alpaca preference layout.
    {"instruction": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
    # Anthropic HH: two whole transcripts that share everything but the last answer.
    {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."},
    {"chosen": USER_HI + [{"role": "assistant", "content": "Hello!"}],
     "rejected": USER_HI + [{"role": "assistant", "content": "Go away."}]},
])
def test_every_layout_reads_as_the_same_pair(tmp_path, row):
    pair = only_pair(tmp_path, row)
    assert (pair.prompt, pair.chosen, pair.rejected) == (USER_HI, "Hello!", "Go away.")
    assert pair.side("rejected").messages == USER_HI + [{"role": "assistant", "content": "Go away."}]


def test_multi_turn_prompts_keep_their_history_and_system(tmp_path):
    hh = ("\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?\n\nAssistant: {}")
    pair = only_pair(tmp_path, {"chosen": hh.format("12."), "rejected": hh.format("No idea.")})
    assert [m["role"] for m in pair.prompt] == ["user", "assistant", "user"] and pair.chosen == "12."
    pair = only_pair(tmp_path, {"conversations": [{"from": "system", "value": "Be brief."},
                                                  {"from": "human", "value": "Hi?"}],
                                "chosen": {"from": "gpt", "value": "Hello!"}, "rejected": {"from": "gpt", "value": "No."}})
    assert [m["role"] for m in pair.prompt] == ["system", "user"]


def test_map_renames_columns_to_the_preference_roles(tmp_path):
    row = {"question": "Hi?", "good": "Hello!", "bad": "Go away."}
    pair = only_pair(tmp_path, row, mapping=["question=prompt", "good=chosen", "bad=rejected"])
    assert (pair.prompt, pair.chosen, pair.rejected) == (USER_HI, "Hello!", "Go away.")


def test_broken_rows_are_refused_with_their_numbers(tmp_path):
    good = {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}
    rows = [good,
            {"prompt": "Hi?", "chosen": "Same.", "rejected": " Same. "},
            {"prompt": "Hi?", "chosen": "", "rejected": "Go away."},
            {"prompt": "Hi?", "chosen": "Hello!", "rejected": None},
            {"prompt": "", "chosen": "Hello!", "rejected": "Go away."},
            good]
    report = inspect_file(write_rows(tmp_path, rows))
    assert report.rows_valid == 2
    assert [(r.row, r.reason) for r in report.rejected] == [
        (2, SAME_ANSWER), (3, "empty chosen answer"), (4, "missing field 'rejected'"), (5, "empty prompt")]
    hh = [{"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!", "rejected": "\n\nHuman: Bye?\n\nAssistant: No."},
          {"chosen": "Hello!", "rejected": "Go away."}]
    report = inspect_file(write_rows(tmp_path, hh + [hh[0] | {"rejected": "\n\nHuman: Hi?\n\nAssistant: No."}]))
    assert [(r.row, r.reason) for r in report.rejected][:1] == [(1, DIFFERENT_PROMPTS)]
    assert report.rejected[1].row == 2 and report.rejected[1].reason.startswith("no prompt")


def test_inspect_json_says_preference_and_warns_about_longer_chosen_answers(tmp_path, capsys):
    from engine.cli import main

    rows = [{"prompt": f"Q{i}", "chosen": "A long and careful answer.", "rejected": "No."} for i in range(10)]
    assert main(["inspect", str(write_rows(tmp_path, rows)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "preference" and out["rows_valid"] == 10
    assert any("the chosen answer is the longer one" in w for w in out["warnings"])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def test_render_learns_only_the_final_answer_of_each_side(tokenizer, tmp_path):
    pair = PreferencePair(row=3, messages=[{"role": "user", "content": "What is 2+2?"},
                                           {"role": "assistant", "content": "4."},
                                           {"role": "user", "content": "And times 3?"},
                                           {"role": "assistant", "content": "12."}], rejected="No idea.")
    rendered = render_pair(pair, tokenizer, max_length=256)
    for side, answer in (("chosen", "12."), ("rejected", "No idea.")):
        sequence = getattr(rendered, side)
        learned = "".join(p["text"] for p in sequence.pieces() if p["trained"])
        assert learned == answer + "<|im_end|>"
    assert rendered.rejection is None and rendered.row == 3
    # Answers that agree in everything max_length leaves of them: nothing left to prefer.
    same_start = PreferencePair(row=4, messages=[{"role": "user", "content": "Hi"},
                                                 {"role": "assistant", "content": "Well " * 30 + "yes."}],
                                rejected="Well " * 30 + "no.")
    assert render_pair(same_start, tokenizer, max_length=24).rejection.startswith("too long")


def test_a_long_prompt_gives_up_its_middle_so_the_answers_keep_their_room(tokenizer):
    question = "Start of the question. " + "filler words " * 200 + "Which colour is the sky?"
    pair = PreferencePair(row=7, messages=[{"role": "user", "content": question},
                                           {"role": "assistant", "content": "Blue."}], rejected="Green, mostly.")
    rendered = render_pair(pair, tokenizer, max_length=64)
    assert rendered.rejection is None and rendered.truncated
    for side, answer in (("chosen", "Blue."), ("rejected", "Green, mostly.")):
        sequence = getattr(rendered, side)
        assert len(sequence.input_ids) <= 64
        pieces = sequence.pieces()
        assert "".join(p["text"] for p in pieces if p["trained"]) == answer + "<|im_end|>"
        shown = "".join(p["text"] for p in pieces)
        # The beginning and the end of the prompt stay, the cut is marked where it happened.
        assert shown.index("<|im_start|>") < shown.index("tokens of the prompt cut") < shown.index("Which colour")
    # Both sides keep the same prompt tokens, so their log-probabilities compare the answers alone.
    start = rendered.chosen.labels.index(next(label for label in rendered.chosen.labels if label != -100))
    assert rendered.chosen.input_ids[:start] == rendered.rejected.input_ids[:start]


def test_sides_whose_prompts_render_differently_are_cut_at_the_end_only(tokenizer, monkeypatch):
    from engine.data import preference_build

    pair = PreferencePair(row=2, messages=[{"role": "user", "content": "Tell me a story."},
                                           {"role": "assistant", "content": "Once " * 100}], rejected="No.")
    whole = render_pair(pair, tokenizer, max_length=4096)
    starts = iter([5, 6])  # as if the template laid the prompt out differently on the two sides
    monkeypatch.setattr(preference_build, "_answer_start", lambda rendered: next(starts))
    rendered = render_pair(pair, tokenizer, max_length=48)
    assert rendered.chosen.input_ids == whole.chosen.input_ids[:48]  # nothing taken out of the middle
    assert rendered.rejected.input_ids == whole.rejected.input_ids[:48]


def test_long_answers_are_cut_at_the_end_after_a_short_prompt(tokenizer):
    pair = PreferencePair(row=1, messages=[{"role": "user", "content": "Tell me a story."},
                                           {"role": "assistant", "content": "Once " * 100}], rejected="No.")
    whole = render_pair(pair, tokenizer, max_length=4096)
    prompt_tokens = whole.chosen.labels.index(next(label for label in whole.chosen.labels if label != -100))
    room = 2 * prompt_tokens + 8  # the prompt needs less than half: it stays whole
    rendered = render_pair(pair, tokenizer, max_length=room)
    assert rendered.truncated and rendered.rejection is None
    assert "cut" not in "".join(p["text"] for p in rendered.chosen.pieces())
    assert len(rendered.chosen.input_ids) == room and rendered.chosen.input_ids == whole.chosen.input_ids[:room]
    assert rendered.rejected.input_ids == whole.rejected.input_ids


def test_build_splits_pairs_and_keeps_the_held_out_ones_for_evaluation(tmp_path, tokenizer):
    config = RunConfig()
    config.data.path = str(write_preference_file(tmp_path / "pairs.jsonl", 30))
    config.training.objective = "dpo"
    data = build_preference_data(config, tokenizer)
    assert len(data.train) + len(data.val) + len(data.test_examples) == 30
    assert len(data.val) == len(data.val_examples) >= 3 and len(data.test_examples) >= 3
    assert all(isinstance(p, PreferencePair) for p in data.val_examples + data.test_examples)
    assert PreferencePair.from_dict(json.loads(json.dumps(data.val_examples[0].to_dict()))) == data.val_examples[0]
    assert all(any(label != IGNORE_INDEX for label in side.labels)
               for pair in data.train for side in (pair.chosen, pair.rejected))
    counts = answer_token_counts(data.val_examples, tokenizer)
    assert len(counts) == len(data.val) and all(c > 0 and r > 0 for c, r in counts)
    # Plain SFT data cannot be preference-tuned: the message says what is needed.
    config.data.path = str(write_rows(tmp_path, [{"instruction": "Hi", "output": "Hello"}]))
    with pytest.raises(DataError, match="not preference pairs.*chosen and a rejected answer"):
        build_preference_data(config, tokenizer)


def test_inspect_with_a_model_compares_answer_lengths(tmp_path, tiny_model_dir, capsys):
    from engine.cli import main

    rows = [{"prompt": f"Q{i}", "chosen": "A long and careful answer, with reasons.", "rejected": "No."} for i in range(4)]
    rows.append({"prompt": "Q", "chosen": "Yes.", "rejected": "A long and careful answer, with reasons."})
    path = write_rows(tmp_path, rows)
    assert main(["inspect", str(path), "--json", "--model", str(tiny_model_dir)]) == 0
    pairs = json.loads(capsys.readouterr().out)["pair_lengths"]
    assert pairs["pairs"] == 5 and pairs["chosen_longer_share"] == 0.8 and pairs["median_difference"] > 0
    assert main(["inspect", str(path), "--model", str(tiny_model_dir)]) == 0
    assert "the chosen answer is longer in 80% of 5 pairs" in capsys.readouterr().out
