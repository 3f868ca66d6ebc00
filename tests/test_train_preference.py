"""DPO and ORPO: the loss against a straightforward computation (and TRL's when installed), and short runs."""
from __future__ import annotations

import json
import math

import pytest
import torch

from engine import config as cfg
from engine.data.preference import PreferencePair
from engine.data.preference_build import render_pair
from engine.events import EvalMetric, Failed, Finished, FirstLoss, PreferenceMetric, Started, read_events
from engine.templates import load_tokenizer
from engine.train import run_training
from engine.train.preference import PreferenceLoss, pair_micro_batches, sequence_logps
from tests.preference_data import dpo_run, write_preference_file

BETA = 0.1
PAIRS = [
    ([{"role": "user", "content": "What is 2 + 3?"}], "The answer is 5.", "I do not know."),
    ([{"role": "user", "content": "Reverse the word: cat"}], "tac", "The answer is cat cat cat."),
    # A multi-turn prompt: the earlier assistant turn is prompt, masked like the rest of it.
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "What is 1 + 1?"}], "2.", "No."),
]


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    """The tiny model with a LoRA adapter moved away from zero, so policy and reference differ."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.train import attention

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32,
                                                attn_implementation=attention.register())
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.2)
    return model.eval()


def straightforward_logp(model, tokenizer, prompt, answer) -> float:
    """Sum of log p(answer token | everything before) with the full logits, the answer found by hand."""
    full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], tokenize=False)
    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    start = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    end = ids.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), start)  # the answer's end-of-turn marker counts
    with torch.no_grad():
        logprobs = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(float(logprobs[t - 1, ids[t]]) for t in range(start, end + 1))


def our_pairs(tokenizer):
    pairs = [PreferencePair(row=i, messages=prompt + [{"role": "assistant", "content": chosen}], rejected=rejected)
             for i, (prompt, chosen, rejected) in enumerate(PAIRS)]
    return [render_pair(pair, tokenizer, max_length=256) for pair in pairs]


def our_dpo(model, rendered, packing: bool, reference_model=None):
    """(policy log-probs in pair order, mean DPO loss) through the training code; reference: adapter off."""
    loss = PreferenceLoss(model, "dpo", BETA)
    batches = pair_micro_batches(rendered, list(range(len(rendered))), packing=packing, max_length=256,
                                 rows_per_pass=0, pad_id=0)
    assert len(batches) == 1
    batch = batches[0]
    with torch.no_grad():
        if reference_model is not None:
            batch.reference = sequence_logps(reference_model, batch)
        else:
            with model.disable_adapter():
                batch.reference = sequence_logps(model, batch)
        total, pairs = loss(batch)
        logps = sequence_logps(model, batch)
    by_pair = {pair: (float(logps[2 * k]), float(logps[2 * k + 1])) for k, pair in enumerate(batch.pair_ids)}
    return [by_pair[i] for i in range(len(rendered))], float(total) / int(pairs)


@pytest.mark.parametrize("packing", [True, False])
def test_dpo_loss_equals_a_straightforward_computation(lora_model, tiny_model_dir, packing):
    tokenizer = load_tokenizer(tiny_model_dir)
    logps, loss = our_dpo(lora_model, our_pairs(tokenizer), packing)
    expected_losses = []
    for (prompt, chosen, rejected), (ours_chosen, ours_rejected) in zip(PAIRS, logps):
        policy = [straightforward_logp(lora_model, tokenizer, prompt, answer) for answer in (chosen, rejected)]
        with lora_model.disable_adapter():
            reference = [straightforward_logp(lora_model, tokenizer, prompt, answer) for answer in (chosen, rejected)]
        assert (ours_chosen, ours_rejected) == pytest.approx(policy, abs=1e-4)
        logit = BETA * ((policy[0] - reference[0]) - (policy[1] - reference[1]))
        expected_losses.append(-math.log(1 / (1 + math.exp(-logit))))
    assert loss == pytest.approx(sum(expected_losses) / len(expected_losses), abs=1e-5)
    assert abs(loss - math.log(2)) > 1e-3  # the adapter really moved the policy away from the reference


def test_orpo_loss_equals_its_formula(lora_model, tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    rendered = our_pairs(tokenizer)
    batch = pair_micro_batches(rendered, [0, 1, 2], packing=False, max_length=256, rows_per_pass=0, pad_id=0)[0]
    with torch.no_grad():
        total, pairs = PreferenceLoss(lora_model, "orpo", BETA)(batch)
    expected = []
    for k in batch.pair_ids:
        prompt, chosen, rejected = PAIRS[k]
        means = []
        for answer, side in ((chosen, rendered[k].chosen), (rejected, rendered[k].rejected)):
            means.append(straightforward_logp(lora_model, tokenizer, prompt, answer) / side.trained_tokens)
        odds = [math.log(math.exp(m) / (1 - math.exp(m))) for m in means]
        expected.append(-means[0] - BETA * math.log(1 / (1 + math.exp(-(odds[0] - odds[1])))))
    assert float(total) / int(pairs) == pytest.approx(sum(expected) / len(expected), abs=1e-4)


def test_dpo_loss_equals_trls(tiny_model_dir, tmp_path):
    """The same token sequences through TRL's DPOTrainer loss (optional: skipped without `trl`)."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    # Full models on both sides: TRL would treat a given adapter as one to re-train and copy it as the reference.
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    tokenizer = load_tokenizer(tiny_model_dir)
    rendered = our_pairs(tokenizer)
    _, ours = our_dpo(policy, rendered, packing=False, reference_model=reference)
    sequences = [pair.chosen for pair in rendered] + [pair.rejected for pair in rendered]  # TRL: chosen, then rejected
    width = max(len(s.input_ids) for s in sequences)
    pad = lambda values, fill: values + [fill] * (width - len(values))  # noqa: E731
    inputs = {"input_ids": torch.tensor([pad(s.input_ids, 0) for s in sequences]),
              "attention_mask": torch.tensor([pad([1] * len(s.input_ids), 0) for s in sequences]),
              "completion_mask": torch.tensor([pad([int(label != -100) for label in s.labels], 0) for s in sequences])}
    dataset = Dataset.from_list([{"prompt": "Hi", "chosen": "a", "rejected": "b"}] * 2)
    args = trl.DPOConfig(output_dir=str(tmp_path), beta=BETA, report_to=[], use_cpu=True, bf16=False)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=dataset,
                             processing_class=tokenizer)
    trainer.model.eval()
    with torch.no_grad():
        theirs = float(trainer._compute_loss(trainer.model, inputs, return_outputs=False))
    assert ours == pytest.approx(theirs, abs=1e-5) and abs(ours - math.log(2)) > 1e-3


def preference_config(model_dir, data, out, **training) -> cfg.RunConfig:
    config = cfg.RunConfig()
    config.model.name, config.data.path, config.out = str(model_dir), str(data), str(out)
    config.data.max_length = 64
    t = config.training
    t.plan = "custom"  # these settings exactly, not the automatic plan for pairs
    t.objective, t.batch_size, t.lr, t.warmup_ratio, t.precision, t.eval_every = "dpo", 8, 1e-3, 0.0, "fp32", 6
    for key, value in training.items():
        setattr(t, key, value)
    return config


def test_short_dpo_run_learns_the_preference_and_the_adapter_loads_with_plain_peft(tiny_model_dir,
                                                                                  tmp_path_factory):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = dpo_run(tmp_path_factory, tiny_model_dir)
    events = read_events(run / "metrics.jsonl")
    assert isinstance(events[-1], Finished)
    first = [e for e in events if isinstance(e, FirstLoss)][0]
    assert first.loss == pytest.approx(math.log(2), abs=1e-4)  # policy == reference before the first step
    val = [e for e in events if isinstance(e, PreferenceMetric) and e.split == "val"]
    train = [e for e in events if isinstance(e, PreferenceMetric) and e.split == "train"]
    assert [e.step for e in val] == [6, 12] and len(train) == 12
    assert val[-1].accuracy == 1.0 and val[-1].reward_margin > 0 and val[-1].loss < math.log(2)
    assert [e.val_loss for e in events if isinstance(e, EvalMetric)] == pytest.approx([e.loss for e in val])
    assert val[-1].preferred_length == pytest.approx(val[-1].chosen_length)  # it prefers the chosen answers
    held_out = [PreferencePair.from_dict(json.loads(line)) for line in (run / "val.jsonl").read_text().splitlines()]
    assert len(held_out) == 5 and all(p.rejected for p in held_out)

    tokenizer = load_tokenizer(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    rendered = [render_pair(p, tokenizer, max_length=64) for p in held_out]
    batch = pair_micro_batches(rendered, list(range(len(rendered))), packing=False, max_length=64,
                               rows_per_pass=0, pad_id=0)[0]
    with torch.no_grad():
        after = sequence_logps(tuned, batch)
        with tuned.disable_adapter():
            before = sequence_logps(tuned, batch)
    margin = lambda logps: float((logps[0::2] - logps[1::2]).mean())  # noqa: E731
    assert margin(after) > margin(before) + 0.5


def test_full_fine_tuning_precomputes_the_reference_once_and_orpo_needs_none(tiny_model_dir, tmp_path):
    data = write_preference_file(tmp_path / "pairs.jsonl", 24)
    config = preference_config(tiny_model_dir, data, tmp_path / "full", max_steps=2, lr=1e-4, packing=False)
    config.method.name = "full"
    events = []
    assert isinstance(run_training(config, events.append), Finished)
    saved = json.loads((tmp_path / "full" / "reference-logps.json").read_text())
    started = [e for e in events if isinstance(e, Started)][0]
    assert (len(saved["train"]), len(saved["val"])) == (started.train_examples, started.val_examples)
    measured = started.train_examples + started.val_examples  # the test pairs are never looked at in training
    assert any(f"Measuring the base model on all {measured} pairs" in getattr(e, "message", "") for e in events)
    config = preference_config(tiny_model_dir, data, tmp_path / "orpo", max_steps=2, objective="orpo")
    events = []
    assert isinstance(run_training(config, events.append), Finished)
    assert not (tmp_path / "orpo" / "reference-logps.json").exists()
    assert [e for e in events if isinstance(e, PreferenceMetric) and e.split == "val"][-1].loss > 0


def test_preference_objective_refuses_prefix_tuning_and_plain_data(tiny_model_dir, tmp_path):
    data = write_preference_file(tmp_path / "pairs.jsonl", 8)
    config = preference_config(tiny_model_dir, data, tmp_path / "a")
    config.method.name = "prefix"
    result = run_training(config)
    assert isinstance(result, Failed) and "preference tuning works with qlora, lora, full" in result.reason
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}] * 4), encoding="utf-8")
    result = run_training(preference_config(tiny_model_dir, plain, tmp_path / "b"))
    assert isinstance(result, Failed) and "not preference pairs" in result.reason


def test_pairs_stay_whole_within_a_pass():
    from engine.data.preference_build import RenderedPair
    from engine.templates import Rendered

    def side(n):
        return Rendered(input_ids=list(range(1, n + 1)), labels=[-100] * (n // 2) + list(range(n // 2, n)),
                        truncated=False, full_length=n)

    pairs = [RenderedPair(side(n), side(n + 2)) for n in (10, 30, 20, 40)]
    batches = pair_micro_batches(pairs, [0, 1, 2, 3], packing=True, max_length=64, rows_per_pass=1, pad_id=0)
    assert sorted(i for b in batches for i in b.pair_ids) == [0, 1, 2, 3]
    for batch in batches:
        owners = batch.owner[batch.owner >= 0]
        assert sorted(set(owners.tolist())) == list(range(2 * batch.pairs))
        assert batch.answer_lengths.tolist() == [s.trained_tokens for i in batch.pair_ids
                                                  for s in (pairs[i].chosen, pairs[i].rejected)]


def test_the_loss_does_not_depend_on_how_a_step_is_split_into_passes(lora_model, tiny_model_dir):
    rendered = our_pairs(load_tokenizer(tiny_model_dir))
    totals = []
    for packing, rows in ((False, 0), (True, 0), (True, 1), (False, 1)):
        batches = pair_micro_batches(rendered, [0, 1, 2], packing=packing, max_length=64, rows_per_pass=rows, pad_id=0)
        loss = PreferenceLoss(lora_model, "dpo", BETA)
        with torch.no_grad():
            total = 0.0
            for batch in batches:
                with lora_model.disable_adapter():
                    batch.reference = sequence_logps(lora_model, batch)
                total += float(loss(batch)[0])
        totals.append(total)
        assert loss.stats.pairs == 3
    assert len(pair_micro_batches(rendered, [0, 1, 2], packing=True, max_length=64, rows_per_pass=1, pad_id=0)) > 1
    assert totals == pytest.approx([totals[0]] * 4, abs=1e-5)


def test_out_of_memory_is_retried_in_smaller_passes_of_whole_pairs(tiny_model_dir, tmp_path, monkeypatch):
    from engine.events import Notice, TrainMetric

    data = write_preference_file(tmp_path / "pairs.jsonl", 24)

    def config_for(out):
        config = preference_config(tiny_model_dir, data, tmp_path / out, max_steps=3, eval_every=100,
                                   batch_size=4, micro_batch_size=8, packing=False)
        config.method.lora_dropout = 0.0  # passes of 2 or 4 pairs then add up to the same step
        return config

    whole = []
    assert isinstance(run_training(config_for("whole"), whole.append), Finished)
    real_forward = PreferenceLoss.forward

    def forward(self, batch):  # more than two pairs in one training pass do not fit
        if batch.pairs > 2 and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(self, batch)

    monkeypatch.setattr(PreferenceLoss, "forward", forward)
    retried = []
    assert isinstance(run_training(config_for("retried"), retried.append), Finished)
    notices = [e.message for e in retried if isinstance(e, Notice) and "ran out of" in e.message]
    assert len(notices) == 1 and notices[0].startswith("Step 2 ran out of GPU memory")
    losses = lambda events: [e.loss for e in events if isinstance(e, TrainMetric)]  # noqa: E731
    assert losses(retried) == pytest.approx(losses(whole), rel=1e-5)
    accuracy = lambda events: [e.accuracy for e in events if isinstance(e, PreferenceMetric)]  # noqa: E731
    assert accuracy(retried) == accuracy(whole)  # the failed pass left nothing in the step's statistics


def test_the_plan_preview_prices_pairs_as_training_lays_them_out(tiny_model_dir, tmp_path):
    from engine.data.build import build_training_data
    from engine.templates import load_tokenizer
    from engine.train.autoplan import lengths_of
    from engine.train.preview import make_preview

    config = preference_config(tiny_model_dir, write_preference_file(tmp_path / "pairs.jsonl", 40), tmp_path / "run")
    config.training.plan = "auto"
    preview = make_preview(config)
    assert "pairs" in preview.plan.explanation and preview.plan.steps == 32
    # both sides of each pair, not the chosen side alone (as the supervised reader would see the file)
    chosen_only, _ = lengths_of(build_training_data(config, load_tokenizer(tiny_model_dir)).train)
    assert preview.work.mean_length > 1.5 * sum(chosen_only) / len(chosen_only)
    assert preview.work.reference_forward
