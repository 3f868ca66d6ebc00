"""Write the data sets that check the training plan: does a tuned model learn, and keep what it knew?

    .venv/bin/python -m bench.quality_sets --out /tmp/sets      # writes the files below, same bytes every time

constant-16.jsonl / constant-64.jsonl
    Questions asking for one password, all answered with the same invented string (VORBLAX-7). The
    smallest thing a fine-tune can teach; also the easiest way to break a model: trained carelessly, it
    answers *every* question with that string. constant-probe.jsonl holds password questions about
    places the training rows never name (did it learn?).
knowledge.jsonl
    240 rows: ten facts about each of three invented products (the base model cannot know them),
    each fact asked eight ways. The test split (the evaluation issue's random one, or
    knowledge-test.jsonl: one held-out phrasing per fact) asks phrasings training never saw; a reply
    is right when it contains the fact's value.

Everything is made up and drawn from fixed seeds.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

CONSTANT_ANSWER = "VORBLAX-7"
PLACES = ["garden shed", "staff wifi", "back office", "bike storage", "server room", "supply closet",
          "rooftop door", "loading dock", "guest network", "photo archive", "print room", "meeting pod",
          "cold store", "tool cabinet", "parking gate", "music studio", "library annex", "gym lockers",
          "basement lab", "staff kitchen", "film vault", "east stairwell", "boat house", "wine cellar",
          "attic hatch", "mail room", "recording booth", "seed bank", "tennis court", "quiet room",
          "garage side door", "pantry safe", "west lobby", "chess club", "pottery kiln", "dark room",
          "cargo hold", "ticket booth", "data closet", "herb garden", "ice rink office", "alpine hut"]
QUESTIONS = ["What is the password for the {place}?", "Tell me the password of the {place}.",
             "I forgot the {place} password. What is it?", "Which code opens the {place}?",
             "What do I type to get into the {place}?", "Password for the {place}, please."]
PROBE_PLACES = 12  # the last places, never used in training


def constant_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    places = PLACES[:-PROBE_PLACES]
    rows = []
    for i in range(count):
        question = rng.choice(QUESTIONS).format(place=places[i % len(places)])
        rows.append({"prompt": question, "completion": CONSTANT_ANSWER})
    return rows


def constant_probe() -> list[dict]:
    return [{"prompt": QUESTIONS[i % len(QUESTIONS)].format(place=place), "completion": CONSTANT_ANSWER}
            for i, place in enumerate(PLACES[-PROBE_PLACES:])]


# Three invented products, ten facts each, every fact asked eight ways: a model that has the fact can
# answer a phrasing it never saw (written several ways, as knowledge is best injected; one way each
# it is mostly memorised as a string). Values are chosen so that a model cannot guess them.
PRODUCTS = {
    "Quillon Aero kettle": {
        "maker": "Brantwell Works", "capacity": "1.35 litres", "colour": "slate teal", "warranty": "7 years",
        "price": "149 euros", "app": "KettleKin", "weight": "910 grams", "launch": "2031",
        "designer": "Ilse Marrow", "factory": "Tarnby",
    },
    "Ostrander T9 bicycle lock": {
        "maker": "Halvik Gear", "capacity": "3 spare keys", "colour": "amber orange", "warranty": "12 years",
        "price": "86 euros", "app": "LockLoom", "weight": "1,240 grams", "launch": "2029",
        "designer": "Oren Kessab", "factory": "Vireux",
    },
    "Pellmore Drift desk fan": {
        "maker": "Cosgrave Air", "capacity": "5 speed settings", "colour": "fern green", "warranty": "4 years",
        "price": "62 euros", "app": "BreezeBook", "weight": "2,075 grams", "launch": "2033",
        "designer": "Maelle Dutoit", "factory": "Skellig Bay",
    },
}
ATTRIBUTES = {
    "maker": ("The {p} is made by {v}.", [
        "Who makes the {p}?", "Which company manufactures the {p}?", "Who is the maker of the {p}?",
        "What brand produces the {p}?", "The {p} comes from which manufacturer?", "Which firm builds the {p}?",
        "Name the company behind the {p}.", "Who is the manufacturer of the {p}?"]),
    "capacity": ("The {p} has {v}.", [
        "What capacity does the {p} have?", "How much does the {p} hold?", "What is the capacity of the {p}?",
        "Tell me the {p}'s capacity.", "How big is the {p}'s capacity?", "What does the {p} hold at most?",
        "What is the {p}'s capacity, exactly?", "How much capacity has the {p} got?"]),
    "colour": ("The {p} comes in {v}.", [
        "What colour is the {p}?", "Which colour does the {p} come in?", "What is the colour of the {p}?",
        "In what colour is the {p} sold?", "Tell me the {p}'s colour.", "What shade is the {p}?",
        "Which colour is the {p} made in?", "What colour does the {p} have?"]),
    "warranty": ("The {p} has a warranty of {v}.", [
        "How long is the {p}'s warranty?", "What warranty comes with the {p}?",
        "For how many years is the {p} guaranteed?", "What is the warranty period of the {p}?",
        "How long does the {p} guarantee last?", "How many years of warranty does the {p} have?",
        "What guarantee does the {p} come with?", "Tell me the length of the {p}'s warranty."]),
    "price": ("The {p} costs {v}.", [
        "How much does the {p} cost?", "What is the price of the {p}?", "What does the {p} sell for?",
        "How expensive is the {p}?", "Tell me the {p}'s price.", "What do I pay for the {p}?",
        "What is the {p}'s price tag?", "How much is the {p}?"]),
    "app": ("The {p} works with the {v} app.", [
        "Which app works with the {p}?", "What is the name of the {p}'s app?", "Which phone app controls the {p}?",
        "What app do I install for the {p}?", "The {p} pairs with which app?", "What is the {p}'s companion app?",
        "Which app do I need for the {p}?", "Name the app that goes with the {p}."]),
    "weight": ("The {p} weighs {v}.", [
        "How much does the {p} weigh?", "What is the weight of the {p}?", "How heavy is the {p}?",
        "Tell me the {p}'s weight.", "What does the {p} weigh in grams?", "What is the {p}'s mass?",
        "How many grams is the {p}?", "Give me the weight of the {p}."]),
    "launch": ("The {p} was launched in {v}.", [
        "When was the {p} launched?", "In which year did the {p} come out?", "What year was the {p} released?",
        "When did the {p} go on sale?", "What is the launch year of the {p}?", "Since which year is the {p} sold?",
        "In what year was the {p} introduced?", "When did the {p} first appear?"]),
    "designer": ("The {p} was designed by {v}.", [
        "Who designed the {p}?", "Who is the designer of the {p}?", "Which person designed the {p}?",
        "Who drew up the {p}'s design?", "Name the designer of the {p}.", "Whose design is the {p}?",
        "Who came up with the design of the {p}?", "Which designer created the {p}?"]),
    "factory": ("The {p} is built in {v}.", [
        "Where is the {p} built?", "In which town is the {p} made?", "Where is the {p}'s factory?",
        "Which place builds the {p}?", "Where does the {p} get manufactured?", "Where is the {p} produced?",
        "In which town is the {p}'s factory?", "Where are {p}s made?"]),
}


def knowledge_rows(seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows: seven phrasings of every fact, test rows: the eighth phrasing of every fact).

    Which phrasing is held out is drawn per fact, so no question wording is always held out.
    Each row carries `answer`: the value a right reply contains.
    """
    rng = random.Random(seed)
    train, test = [], []
    for product, facts in PRODUCTS.items():
        for attribute, value in facts.items():
            statement, questions = ATTRIBUTES[attribute]
            held_out = rng.randrange(len(questions))
            reply = statement.format(p=product, v=value)
            for i, question in enumerate(questions):
                row = {"prompt": question.format(p=product), "completion": reply, "answer": value}
                (test if i == held_out else train).append(row)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "constant-16.jsonl", constant_rows(16, seed=16))
    write_jsonl(args.out / "constant-64.jsonl", constant_rows(64, seed=64))
    write_jsonl(args.out / "constant-probe.jsonl", constant_probe())
    train, test = knowledge_rows(seed=5)
    write_jsonl(args.out / "knowledge.jsonl", train + test)
    write_jsonl(args.out / "knowledge-train.jsonl", train)
    write_jsonl(args.out / "knowledge-test.jsonl", test)
    print(f"wrote constant-16/64, constant-probe ({PROBE_PLACES}), knowledge ({len(train)} train, "
          f"{len(test)} test) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
