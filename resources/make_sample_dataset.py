"""Write resources/sample_dataset.jsonl: the dataset a new user sees when the window first opens.

The task is small and easy to see: turn a customer's order, written any way they like, into one
line of JSON with fixed keys. The starter model answers such messages in chatty prose before
tuning; after a few minutes of LoRA on a CPU it answers with the JSON shape, so the difference is
obvious in the chat panes. The content is made up and generated from a fixed seed, so running this
script again gives the same file byte for byte.

    python resources/make_sample_dataset.py            # rewrites the committed file
    python resources/make_sample_dataset.py --count 50 --out /tmp/x.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ITEMS = ["mug", "notebook", "desk lamp", "backpack", "umbrella", "water bottle", "scarf", "teapot",
         "phone case", "candle", "plant pot", "chair cushion", "bike light", "towel", "picture frame",
         "wall clock", "pencil case", "yoga mat", "doormat", "lunch box"]
COLOURS = ["red", "blue", "green", "black", "white", "yellow", "grey", "orange", "purple", "pink"]
CITIES = ["Leeds", "Porto", "Lyon", "Graz", "Utrecht", "Bergen", "Cork", "Turin", "Ghent", "Malmo",
          "Krakow", "Basel", "Seville", "Aarhus", "Tampere", "Brno", "Bilbao", "Leipzig", "Galway", "Split"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "next week", "tomorrow"]
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine", 10: "ten", 12: "twelve"}

# Ways people write an order; {n} is the quantity as digits or a word, {s} the plural ending.
TEMPLATES = [
    "Hi, I'd like {n} {colour} {item}{s} delivered to {city} by {day}.",
    "Can you send {n} {colour} {item}{s} to {city}? I need them by {day}.",
    "Please ship {n} {item}{s} in {colour} to our office in {city} before {day}.",
    "Order: {n} x {item}, colour {colour}, deliver to {city}, deadline {day}.",
    "hello! could i get {n} {colour} {item}{s}? address is in {city}. {day} would be great",
    "We need {n} {item}{s} ({colour}) in {city} no later than {day}, thanks.",
    "I want to buy {n} {colour} {item}{s}. Send to {city}, please, by {day}.",
    "Is it possible to have {n} {item}{s}, the {colour} ones, arrive in {city} on {day}?",
    "{day} delivery to {city} please: {n} {colour} {item}{s}.",
    "Good morning. My shop in {city} wants {n} {colour} {item}{s}; {day} at the latest.",
]


def _plural(item: str, quantity: int) -> str:
    if quantity == 1:
        return ""
    return "es" if item.endswith(("ch", "sh", "x", "s")) else "s"


def make_example(rng: random.Random) -> dict:
    """One conversation: a free-form order and its JSON answer."""
    item, colour, city, day = rng.choice(ITEMS), rng.choice(COLOURS), rng.choice(CITIES), rng.choice(DAYS)
    quantity = rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 40, 50])
    spelled = NUMBER_WORDS.get(quantity) if rng.random() < 0.3 else None
    template = rng.choice(TEMPLATES)
    message = template.format(n=spelled or quantity, colour=colour, item=item, s=_plural(item, quantity),
                              city=city, day=day)
    if template.startswith("{day}"):
        message = message[0].upper() + message[1:]
    answer = json.dumps({"item": item, "quantity": quantity, "colour": colour, "city": city,
                         "deliver_by": day})
    return {"messages": [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]}


def make_dataset(count: int, seed: int = 7) -> list[dict]:
    """`count` distinct examples from a fixed seed (distinct so validation never repeats training)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples = []
    while len(examples) < count:
        example = make_example(rng)
        key = example["messages"][0]["content"]
        if key not in seen:
            seen.add(key)
            examples.append(example)
    return examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "sample_dataset.jsonl")
    args = parser.parse_args(argv)
    lines = [json.dumps(example, ensure_ascii=False) for example in make_dataset(args.count)]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} examples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
