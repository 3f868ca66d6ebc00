"""Preference before/after: does the tuned model prefer the chosen answers more often than the base did,
and did its own answers grow without reason (reward hacking: "verbose without substance")?

For each held-out pair, base and tuned alike give both answers a log-probability: the sum over the
answer's tokens, rendered exactly as in training. Preference accuracy is the share of pairs where
the chosen answer gets the higher one. It is NOT length-normalised (the total log-probability of
each answer, which is what DPO compares); the per-token version is reported beside it. For the tuned
model, the DPO implicit reward beta * (log p_tuned - log p_base) of each answer gives a second
accuracy and margin. The length of the greedy answers to the held-out prompts (the evaluation's
examples) shows whether the tuned model became wordier; when it did by much without preferring the
chosen answers more often, the verdict says so and shows answers side by side.
"""
from __future__ import annotations

import math
from statistics import fmean
from typing import Any, Callable, Optional

from engine.evaluate.loading import SIDES
from engine.evaluate.runfolder import RunFolder
from engine.words import count

# The guard: answers this much longer (ratio and tokens) ...
LONGER_RATIO, LONGER_TOKENS = 1.5, 10
# ... while preference accuracy rose by less than this, is reported as verbosity without substance.
REAL_GAIN = 0.05
# An implicit-reward accuracy from here on says the tuned model moved towards the chosen answers.
LEARNED_DIRECTION = 0.6
SHOWN_EXAMPLES = 3
PAIR_TOKEN_BUDGET_ROWS = 4  # rows of max_length tokens per forward pass while scoring


def preference_pairs(rows: list) -> list:
    """The preference pairs (PreferencePair) among held-out rows (Example.to_dict each); [] for other data."""
    from engine.data.preference import PreferencePair, is_pair

    return [PreferencePair.from_dict(item) for item in rows if is_pair(item)]


def _objective(run: RunFolder) -> tuple[str, float]:
    config = run.config()
    if config is None:
        return "sft", 0.1
    return config.training.objective, config.training.beta


def score_pairs(model, rendered: list, *, max_length: int, pad_id: int, on_item: Optional[Callable] = None,
                stop: Any = None) -> list[tuple[float, float]]:
    """(log p(chosen), log p(rejected)) per RenderedPair under `model`, in the order given."""
    import torch

    from engine.train.preference import pair_micro_batches, sequence_logps

    device = next(model.parameters()).device
    scores: dict[int, tuple[float, float]] = {}
    batches = pair_micro_batches(rendered, list(range(len(rendered))), packing=False, max_length=max_length,
                                 rows_per_pass=PAIR_TOKEN_BUDGET_ROWS, pad_id=pad_id)
    with torch.inference_mode():
        for batch in batches:
            if stop is not None and stop.is_set():
                break
            logps = sequence_logps(model, batch.to(device)).tolist()
            for k, pair in enumerate(batch.pair_ids):
                scores[pair] = (logps[2 * k], logps[2 * k + 1])
                if on_item:
                    on_item()
    return [scores[i] for i in range(len(rendered)) if i in scores]


def _share(flags: list) -> Optional[float]:
    return round(fmean(flags), 4) if flags else None


def side_summary(scores: list, lengths: list, answer_lengths: list) -> dict:
    """Accuracy, per-token accuracy and mean margin from (chosen, rejected) log-probs; mean greedy answer length."""
    margins = [c - r for c, r in scores]
    per_token = [c / max(1, nc) > r / max(1, nr) for (c, r), (nc, nr) in zip(scores, lengths)]
    return {"accuracy": _share([m > 0 for m in margins]), "accuracy_per_token": _share(per_token),
            "margin": round(fmean(margins), 4) if margins else None,
            "mean_length": round(fmean(answer_lengths), 1) if answer_lengths else None}


def implicit_rewards(base: list, tuned: list, beta: float) -> dict:
    """DPO's implicit reward beta * (log p_tuned - log p_base) per answer: accuracy and mean margin."""
    margins = [beta * ((tc - bc) - (tr - br)) for (bc, br), (tc, tr) in zip(base, tuned)]
    return {"reward_accuracy": _share([m > 0 for m in margins]),
            "reward_margin": round(fmean(margins), 4) if margins else None}


def sign_test(gained: int, lost: int) -> Optional[float]:
    """Two-sided p-value that pairs changing to right and to wrong are equally likely (exact binomial)."""
    n = gained + lost
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(0, min(gained, lost) + 1)) / 2 ** n
    return round(min(1.0, 2 * tail), 4)


def _answer_lengths(examples: list, tokenizer) -> dict[str, list[int]]:
    return {side: [len(tokenizer(e[side], add_special_tokens=False)["input_ids"]) for e in examples] for side in SIDES}


def verdict(result: dict) -> tuple[str, bool]:
    """(plain-words verdict, whether answers grew much longer without the preference accuracy rising)."""
    base, tuned, n = result["base"], result["tuned"], result["pairs"]
    gain = tuned["accuracy"] - base["accuracy"]
    one_pair = 100 / max(1, n)
    part = "held-out" if result.get("part", "test") == "test" else "validation"
    lines = [f"On {n} {part} pairs the tuned model gives the chosen answer the higher probability in "
             f"{100 * tuned['accuracy']:.0f}% of them, the base model in {100 * base['accuracy']:.0f}% "
             f"({count(result['changed']['to_right'], 'pair')} turned right, {result['changed']['to_wrong']} turned "
             "wrong)."]
    if gain >= REAL_GAIN:
        lines.append("It has learned to prefer the chosen answers.")
    elif gain <= -REAL_GAIN:
        lines.append("It prefers the chosen answers less often than before: check the data (are chosen and "
                     "rejected the right way round?) and the learning rate.")
    else:
        points = round(one_pair, 1) if one_pair < 2 else round(one_pair)
        lines.append(f"That is no clear change (one pair moves the share by {points:g} point{'' if points == 1 else 's'}).")
        moved = tuned.get("reward_accuracy")
        if moved is not None and moved >= LEARNED_DIRECTION:
            lines.append(f"Compared with the base model, though, it moved towards the chosen answer in {100 * moved:.0f}% "
                         "of the pairs (DPO's implicit reward; 50% is chance): it has learned which answers are "
                         "preferred, not yet by enough to turn most pairs, where one answer was far likelier to "
                         "begin with. More pairs move it further.")
    lengths = (base.get("mean_length"), tuned.get("mean_length"))
    verbose = False
    if None not in lengths:
        ratio = lengths[1] / max(lengths[0], 1.0)  # a base that answered nothing counts as one token
        if ratio >= LONGER_RATIO and lengths[1] - lengths[0] >= LONGER_TOKENS:
            verbose = gain < REAL_GAIN
            if verbose:
                lines.append(f"Its answers are {ratio:.1f}x as long as the base model's ({lengths[1]:.0f} vs "
                             f"{lengths[0]:.0f} tokens) without preferring the chosen answers more often: it may "
                             "have learned to be verbose without substance (reward hacking). Compare the answers "
                             "below; fewer steps, a higher beta, or pairs whose chosen answer is not simply the "
                             "longer one help.")
            else:
                lines.append(f"Its answers grew {ratio:.1f}x longer ({lengths[1]:.0f} vs {lengths[0]:.0f} tokens): "
                             "read a few to check that the extra words add something.")
    return " ".join(lines), verbose


def _side_by_side(examples: list, lengths: dict) -> list[dict]:
    """The held-out answers whose length grew most, base beside tuned."""
    growth = sorted(range(len(examples)), key=lambda i: lengths["tuned"][i] - lengths["base"][i], reverse=True)
    return [{"row": examples[i].get("row"), "prompt": examples[i]["prompt"], "base": examples[i]["base"],
             "tuned": examples[i]["tuned"], "base_tokens": lengths["base"][i], "tuned_tokens": lengths["tuned"][i]}
            for i in growth[:SHOWN_EXAMPLES]]


def evaluate_preference(loaded, run: RunFolder, pairs: list, examples: list, *, part: str = "test",
                        on_item: Optional[Callable] = None, stop: Any = None) -> Optional[dict]:
    """The `preference` section of the evaluation results; None when there are no pairs or it was stopped.

    `examples` are the evaluation's held-out examples (prompt, base and tuned greedy answers); `part` says
    which rows the pairs are ("test", or "validation" for runs without test rows).
    """
    from engine.data.preference_build import render_pairs

    tokenizer = loaded.tokenizer
    max_length = run.max_length()
    kept, _, _ = render_pairs(pairs, tokenizer, max_length)
    if not kept:
        return None
    rendered = [r for _, r in kept]
    lengths = [(r.answer_tokens("chosen"), r.answer_tokens("rejected")) for r in rendered]
    pad = tokenizer.pad_token_id or 0
    scores = {}
    for side in SIDES:
        with loaded.side(side) as model:
            scores[side] = score_pairs(model, rendered, max_length=max_length, pad_id=pad, on_item=on_item, stop=stop)
        if len(scores[side]) < len(rendered):
            return None
    answer_lengths = _answer_lengths(examples, tokenizer)
    objective, beta = _objective(run)
    right = {side: [c > r for c, r in scores[side]] for side in SIDES}
    result = {"pairs": len(rendered), "part": part, "objective": objective, "beta": beta, "length_normalised": False,
              "base": side_summary(scores["base"], lengths, answer_lengths["base"]),
              "tuned": side_summary(scores["tuned"], lengths, answer_lengths["tuned"]),
              "changed": {"to_right": sum(t and not b for b, t in zip(right["base"], right["tuned"])),
                          "to_wrong": sum(b and not t for b, t in zip(right["base"], right["tuned"]))},
              "answers_measured": len(examples)}
    result["tuned"].update(implicit_rewards(scores["base"], scores["tuned"], beta))
    result["changed"]["sign_test_p"] = sign_test(result["changed"]["to_right"], result["changed"]["to_wrong"])
    result["verdict"], result["verbose_without_substance"] = verdict(result)
    result["examples"] = _side_by_side(examples, answer_lengths) if examples else []
    return result

