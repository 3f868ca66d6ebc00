"""How far each held-out preference pair is from changing sides: its log-probability margin under base and tuned.

    .venv/bin/python -m bench.pref_margins RUN

Prints one line per test pair of a trained preference run: the margin log p(chosen) - log p(rejected) in nats
under the base model and under the tuned one (total over the answer's tokens, as the evaluation's preference
accuracy counts it), and the two answers' lengths in tokens. A pair changes sides when its margin crosses zero,
so the margins say how much a run would have to move them to change the accuracy.
"""
from __future__ import annotations

import argparse
import json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder trained with --objective dpo or orpo")
    args = parser.parse_args(argv)

    from engine.data.preference_build import render_pairs
    from engine.evaluate.loading import SIDES, load_run
    from engine.evaluate.preference import preference_pairs, score_pairs
    from engine.evaluate.runfolder import open_run

    run = open_run(args.run)
    rows = [json.loads(line) for line in (run.path / "test.jsonl").read_text(encoding="utf-8").splitlines() if line]
    loaded = load_run(run)
    kept, _, _ = render_pairs(preference_pairs(rows), loaded.tokenizer, run.max_length())
    rendered = [pair for _, pair in kept]
    pad = loaded.tokenizer.pad_token_id or 0
    scores = {}
    for side in SIDES:
        with loaded.side(side) as model:
            scores[side] = score_pairs(model, rendered, max_length=run.max_length(), pad_id=pad)
    print("base margin  tuned margin  chosen/rejected tokens")
    for (bc, br), (tc, tr), pair in zip(scores["base"], scores["tuned"], rendered):
        print(f"{bc - br:11.2f}  {tc - tr:12.2f}  {pair.answer_tokens('chosen')}/{pair.answer_tokens('rejected')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
