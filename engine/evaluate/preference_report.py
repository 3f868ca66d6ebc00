"""The preference section of evaluation reports and the CLI table (engine.evaluate.preference makes the numbers)."""
from __future__ import annotations

import html

SIDES = ("base", "tuned")
# Two answers side by side; a style block of its own, so the report's shared style needs no rule for it.
_PAIR_STYLE = ("<style>.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}"
               ".pair div div{white-space:pre-wrap}</style>")


def _number(value, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _title(section: dict) -> str:
    return f"Preference pairs ({section['pairs']} held-out {section.get('part', 'test')} pairs)"


def preference_rows(section: dict) -> list[tuple[str, str, str]]:
    """(measure, base, tuned) rows of the preference section, formatted for a report or a terminal table."""
    base, tuned = section["base"], section["tuned"]
    rows = [("Prefers the chosen answer (total log-prob)", "{:.0%}", "accuracy"),
            ("Prefers the chosen answer (per token)", "{:.0%}", "accuracy_per_token"),
            ("Mean log-prob margin, chosen - rejected", "{:+.2f}", "margin"),
            ("Mean length of greedy answers (tokens)", "{:.0f}", "mean_length")]
    table = [(name, _number(base.get(key), pattern), _number(tuned.get(key), pattern)) for name, pattern, key in rows]
    table.append(("DPO implicit reward: chosen wins", "", _number(tuned.get("reward_accuracy"), "{:.0%}")))
    table.append(("DPO implicit reward margin", "", _number(tuned.get("reward_margin"), "{:+.3f}")))
    return table


def preference_markdown(results: dict) -> list[str]:
    section = results.get("preference")
    if not section:
        return []
    lines = ["", f"## {_title(section)}", "", section["verdict"], "", "| | base | tuned |", "|---|---|---|"]
    lines += [f"| {name} | {b} | {t} |" for name, b, t in preference_rows(section)]
    for example in section.get("examples", []):
        lines += ["", f"**Row {example.get('row')}:** {example['prompt']}", ""]
        for side in SIDES:
            quoted = "\n> ".join(str(example[side]).splitlines() or [""])
            lines += [f"*{side.capitalize()} ({example[side + '_tokens']} tokens):*", "", f"> {quoted}", ""]
    return lines


def preference_html(results: dict) -> list[str]:
    section = results.get("preference")
    if not section:
        return []
    e = html.escape
    parts = [_PAIR_STYLE, f"<h2>{e(_title(section))}</h2>", f"<p>{e(section['verdict'])}</p>",
             "<table><tr><th></th><th>base</th><th>tuned</th></tr>"
             + "".join(f"<tr><td>{e(n)}</td><td>{e(b)}</td><td>{e(t)}</td></tr>" for n, b, t in preference_rows(section))
             + "</table>"]
    for example in section.get("examples", []):
        parts.append(f"<h3>Row {e(str(example.get('row')))}: {e(example['prompt'])}</h3><div class='pair'>")
        for side in SIDES:
            parts.append(f"<div><span class='label'>{side.capitalize()} ({example[side + '_tokens']} tokens)</span>"
                         f"<div>{e(str(example[side]))}</div></div>")
        parts.append("</div>")
    return parts
