"""Draw Tunesmith's general-ability benchmark (general-v1.json) from the public sources, reproducibly.

    python resources/benchmarks/make_subset.py --sources DIR [--out resources/benchmarks/general-v1.json]

DIR holds the source files named in SOURCES.md (how to get each one is written there):
    DIR/bigbench-1.0.0/bigbench/benchmark_tasks/...   the `bigbench` source package from PyPI, unpacked
    DIR/arc_easy.jsonl, DIR/piqa.jsonl, DIR/openbook_qa.jsonl   from llm-foundry's scripts/eval/local_data
    DIR/hellaswag_val_full.txt                          HellaSwag's validation split as text

For every task the items are shuffled with a seed of their own (random.Random(f"{SEED}/{task}")), and
the first PER_TASK are kept: the same sources always give the same file. The file's own order is
that shuffle too, so the first k items of each task are themselves a random draw: "quick" takes the
first third, the live curve during training the first few.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

SEED = 20240611
PER_TASK = 30
VERSION = "1"

# Every task considered: id -> (title, kind, reader, source file or BIG-bench task, length normalisation, licence).
# "chars" divides a choice's log-likelihood by its length in characters (lm-evaluation-harness's acc_norm,
# the usual convention for ARC and HellaSwag); BIG-bench's own multiple-choice metric compares raw ones.
BB = "Apache-2.0 (BIG-bench)"
CANDIDATES = {
    "arc_easy": ("ARC-Easy: grade-school science questions", "knowledge", "llm_foundry", "arc_easy.jsonl", "chars",
                 "CC BY-SA 4.0 (AI2)"),
    "hellaswag": ("HellaSwag: how an everyday scene goes on", "commonsense", "hellaswag", "hellaswag_val_full.txt",
                  "chars", "MIT (Rowan Zellers)"),
    "bb_general_knowledge": ("General knowledge: basic facts (BIG-bench)", "knowledge", "bigbench",
                             "general_knowledge", "none", BB),
    "bb_arithmetic": ("Arithmetic: one-digit sums (BIG-bench)", "reasoning", "bigbench",
                      "arithmetic/1_digit_addition,arithmetic/1_digit_subtraction,arithmetic/1_digit_multiplication",
                      "none", BB),
    "hyperbaton_phrases": ("Adjective order: grammar (BIG-bench hyperbaton)", "grammar", "adjective_order",
                           "hyperbaton", "none", BB),
}
for _name, _title, _kind in (
        ("human_organs_senses", "Human organs and senses (BIG-bench)", "knowledge"),
        ("emoji_movie", "Emoji movie titles (BIG-bench)", "knowledge"),
        ("physical_intuition", "Physical intuition (BIG-bench)", "reasoning"),
        ("odd_one_out", "Odd one out: word meaning (BIG-bench)", "language"),
        ("phrase_relatedness", "Phrase relatedness: word meaning (BIG-bench)", "language"),
        ("similarities_abstraction", "Similarities: how two things are alike (BIG-bench)", "reasoning"),
        ("logical_sequence", "Logical sequence: what comes first (BIG-bench)", "reasoning"),
        ("date_understanding", "Date understanding (BIG-bench)", "reasoning"),
        ("metaphor_understanding/met2lit", "Metaphor to literal (BIG-bench)", "language"),
        ("metaphor_understanding/lit2met", "Literal to metaphor (BIG-bench)", "language"),
        ("common_morpheme", "Common morpheme (BIG-bench)", "language"),
        ("nonsense_words_grammar", "Nonsense words grammar (BIG-bench)", "grammar"),
        ("english_proverbs", "English proverbs (BIG-bench)", "language"),
        ("known_unknowns", "Known unknowns (BIG-bench)", "knowledge"),
        ("anachronisms", "Anachronisms (BIG-bench)", "commonsense"),
        ("misconceptions", "Misconceptions (BIG-bench)", "knowledge"),
        ("unit_conversion/unit_identification", "Unit identification (BIG-bench)", "reasoning"),
        ("cause_and_effect/two_sentences", "Cause and effect (BIG-bench)", "commonsense"),
        ("identify_odd_metaphor", "Odd metaphor (BIG-bench)", "language"),
        ("empirical_judgments", "Empirical judgments (BIG-bench)", "reasoning"),
        ("arithmetic/2_digit_addition", "Two-digit addition (BIG-bench)", "reasoning")):
    CANDIDATES["bb_" + _name.replace("/", "_")] = (_title, _kind, "bigbench", _name, "none", BB)

# The tasks shipped: the starter model is clearly above chance on each (SOURCES.md has the table), they cover
# five kinds of ability, and together they cost about 16,000 tokens per model (the 60-second budget on 2 cores).
CHOSEN = ("arc_easy", "hellaswag", "bb_general_knowledge", "bb_similarities_abstraction", "bb_logical_sequence",
          "bb_metaphor_understanding_lit2met", "hyperbaton_phrases")
TASKS = {task: CANDIDATES[task] for task in CHOSEN}


def _clean_question(text: str) -> str:
    text = text.strip()
    for prefix in ("Question:", "Q:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return text


def read_llm_foundry(path: Path) -> list[dict]:
    """llm-foundry's multiple-choice JSONL: {"query", "choices", "gold"} per line."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        items.append({"question": _clean_question(row["query"]), "choices": [c.strip() for c in row["choices"]],
                      "answer": int(row["gold"]), "source": f"{path.name}:{number}"})
    return items


def read_hellaswag(path: Path) -> list[dict]:
    """Six lines per item: "activity: context", the gold index, then the four endings."""
    lines = path.read_text(encoding="utf-8").splitlines()
    items = []
    for start in range(0, len(lines) - 5, 6):
        context, gold, *endings = lines[start:start + 6]
        items.append({"question": context.strip(), "choices": [e.strip() for e in endings], "answer": int(gold),
                      "source": f"{path.name}:{start // 6 + 1}"})
    return items


def read_bigbench(root: Path, names: str) -> list[dict]:
    """BIG-bench JSON tasks (several joined with commas): multiple-choice examples with target_scores."""
    items = []
    for name in names.split(","):
        task = json.loads((root / name / "task.json").read_text(encoding="utf-8"))
        prefix = (task.get("task_prefix") or "").strip()
        for number, example in enumerate(task["examples"], start=1):
            scores = example.get("target_scores")
            if not scores or max(scores.values()) <= 0:
                continue
            choices = list(scores)
            best = max(scores.values())
            if sum(1 for v in scores.values() if v == best) != 1:
                continue  # several right answers: not a single-answer item
            question = example["input"].strip()
            items.append({"question": f"{prefix}\n{question}".strip() if prefix else question,
                          "choices": [str(c).strip() for c in choices],
                          "answer": choices.index(next(c for c in choices if scores[c] == best)),
                          "source": f"bigbench/{name}:{number}"})
    return items


_ADJECTIVE_ORDER = re.compile(r'a "\s*(.+?)\s*" b "\s*(.+?)\s*"')


def read_adjective_order(root: Path, name: str) -> list[dict]:
    """BIG-bench hyperbaton with the two phrases as the choices (its own layout answers with the letters "a"
    and "b", which measures letter guessing, not grammar)."""
    items = []
    for item in read_bigbench(root, name):
        match = _ADJECTIVE_ORDER.search(item["question"])
        if match:
            items.append({**item, "question": "Which phrase has the adjectives in the natural English order?",
                          "choices": [match.group(1), match.group(2)]})
    return items


def read_task(sources: Path, reader: str, where: str) -> list[dict]:
    if reader == "llm_foundry":
        return read_llm_foundry(sources / where)
    if reader == "hellaswag":
        return read_hellaswag(sources / where)
    if reader == "bigbench":
        return read_bigbench(sources / "bigbench-1.0.0" / "bigbench" / "benchmark_tasks", where)
    if reader == "adjective_order":
        return read_adjective_order(sources / "bigbench-1.0.0" / "bigbench" / "benchmark_tasks", where)
    raise ValueError(reader)


def draw(items: list[dict], task: str, count: int) -> list[dict]:
    """A seeded random sample of `count` items, in the sampled order."""
    items = [i for i in items if i["question"] and len(set(i["choices"])) == len(i["choices"]) >= 2]
    random.Random(f"{SEED}/{task}").shuffle(items)
    return items[:count]


def build(sources: Path, per_task: int = PER_TASK, tasks: dict = TASKS) -> dict:
    out_tasks, out_items = [], []
    for task_id, (title, kind, reader, where, normalise, licence) in tasks.items():
        chosen = draw(read_task(sources, reader, where), task_id, per_task)
        out_tasks.append({"id": task_id, "title": title, "kind": kind, "normalise": normalise, "licence": licence,
                          "source": where, "items": len(chosen),
                          "chance": round(sum(1 / len(i["choices"]) for i in chosen) / max(1, len(chosen)), 4)})
        out_items += [{"task": task_id, **item} for item in chosen]
    body = json.dumps([out_tasks, out_items], sort_keys=True, ensure_ascii=False)
    return {"name": "Tunesmith general ability", "version": VERSION,
            "digest": hashlib.sha256(body.encode("utf-8")).hexdigest()[:16], "seed": SEED,
            "about": "A fixed sample of public multiple-choice benchmarks, scored by log-likelihood in the run's "
                     "chat layout, to see whether fine-tuning made the model forget. Sources, licences and how "
                     "the sample was drawn: SOURCES.md beside this file.",
            "tasks": out_tasks, "items": out_items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(f"general-v{VERSION}.json"))
    parser.add_argument("--per-task", type=int, default=PER_TASK)
    args = parser.parse_args()
    data = build(args.sources, args.per_task)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(data['items'])} items in {len(data['tasks'])} tasks, digest {data['digest']}")


if __name__ == "__main__":
    main()
