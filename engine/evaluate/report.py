"""Evaluation reports: one self-contained Markdown or HTML file with the loss chart embedded.

Everything comes from a results dict (engine.evaluate.before_after) plus the run's metrics.jsonl,
so a report can be written again at any time from RUN/eval/results.json.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional

from engine.evaluate.plot import TRAIN_COLOR, VAL_COLOR, loss_chart
from engine.evaluate.preference_report import preference_html, preference_markdown
from engine.evaluate.runfolder import EvaluationError, RunFolder, heldout_part, open_run

CHART_FILE = "loss.png"
FORMATS = ("html", "md")


def loss_curves(run: RunFolder) -> tuple[list, list]:
    """(step, training loss) and (step, validation loss) points from the run's metrics.jsonl."""
    from engine.events import EvalMetric, TrainMetric, read_events

    if not run.metrics_path.is_file():
        return [], []
    events = read_events(run.metrics_path)
    train = [(e.step, e.loss) for e in events if isinstance(e, TrainMetric)]
    val = [(e.step, e.val_loss) for e in events if isinstance(e, EvalMetric)]
    return train, val


def chart_png(run: RunFolder) -> Optional[bytes]:
    """The training (blue) and validation (orange) loss chart, or None when the run logged no losses."""
    train, val = loss_curves(run)
    if not train and not val:
        return None
    return loss_chart([(train, TRAIN_COLOR), (val, VAL_COLOR)])


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def heldout_line(results: dict) -> str:
    """One sentence saying which examples the numbers come from, and how far to trust them."""
    heldout = results.get("heldout") or {}
    count = heldout.get("examples", results.get("val_examples", 0))
    if heldout_part(results) == "test":
        return (f"Measured on {count} test examples that training never saw, not even to choose the best step "
                f"({heldout.get('file', 'test.jsonl')}).")
    return f"Measured on {count} validation examples. " + (heldout.get("note") or (
        "Those also chose the best step and when to stop, so they flatter the tuned model a little."))


def percent(value) -> str:
    """An accuracy (0..1) as a percentage with one decimal."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def with_interval(block: dict) -> str:
    """{"accuracy", "ci"} as "61.7% (55.4-67.6)"."""
    low, high = block["ci"]
    return f"{percent(block['accuracy'])} ({100 * low:.1f}-{100 * high:.1f})"


def difference_text(block: dict) -> str:
    """{"value", "ci"} in percentage points, e.g. "-4.2 points (-7.5 to -1.1)"."""
    low, high = block["ci"]
    return f"{100 * block['value']:+.1f} points ({100 * low:+.1f} to {100 * high:+.1f})"


def general_rows(general: dict) -> list[tuple[str, str, str, str, str]]:
    """(task, chance, base, tuned, difference) per task and for all tasks, formatted for a table."""
    rows = [(row["title"], percent(row["chance"]), with_interval(row["base"]), with_interval(row["tuned"]),
             difference_text(row["difference"]) + (" (fell)" if row["fell"] else ""))
            for row in general["per_task"]]
    rows.append(("All tasks", percent(general["chance"]), with_interval(general["base"]), with_interval(general["tuned"]),
                 difference_text(general["difference"])))
    return rows


def _bar(value: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "░" * (width - filled)


def comparison_rows(results: dict) -> list[tuple[str, str, str]]:
    """(measure, base, tuned) rows, formatted for a table."""
    base, tuned = results["base"], results["tuned"]
    loss_name = f"{heldout_part(results).capitalize()} loss (lower is better)"
    rows = [(loss_name, _number(base.get("val_loss")), _number(tuned.get("val_loss"))),
            ("Perplexity (lower is better)", _number(base.get("perplexity"), 2), _number(tuned.get("perplexity"), 2)),
            ("Exact match", _percent(base.get("exact_match")), _percent(tuned.get("exact_match"))),
            ("chrF (0-100)", _number(base.get("chrf"), 1), _number(tuned.get("chrf"), 1)),
            ("ROUGE-L (0-100)", _number(base.get("rouge_l"), 1), _number(tuned.get("rouge_l"), 1))]
    general = results.get("general_ability")
    if general:
        rows.append((f"General ability ({general['items']} benchmark questions)", with_interval(general["base"]),
                     with_interval(general["tuned"])))
    if "probe_accuracy" in base:
        rows.append(("Probe questions answered right (strict)", _percent(base.get("probe_accuracy")),
                     _percent(tuned.get("probe_accuracy"))))
    return rows


def _title(results: dict) -> str:
    return f"Evaluation of {Path(results['run_dir']).name}"


def _chart_caption() -> str:
    return ("Loss during training: blue = training loss, orange = validation loss; "
            "training steps across, loss up the side.")


def to_markdown(results: dict, png: Optional[bytes], run: RunFolder) -> str:
    """The report as Markdown; the chart is an embedded data: URI image."""
    lines = [f"# {_title(results)}", "", f"Method: {results['method']} - base model: `{results['base_model_path']}` - "
             f"evaluated {results.get('created', '')} on {results.get('device', '')}.", "", heldout_line(results), ""]
    lines += [f"- {line}" for line in results.get("summary", [])]
    lines += ["", "| | base | tuned |", "|---|---|---|"]
    lines += [f"| {name} | {b} | {t} |" for name, b, t in comparison_rows(results)]
    lines += preference_markdown(results)
    lines += _general_markdown(results)
    if png:
        lines += ["", "## Training curves", "", f"![{_chart_caption()}](data:image/png;base64,"
                  f"{base64.b64encode(png).decode('ascii')})", "", _chart_caption()]
    if results["examples"]:
        lines += ["", f"## Held-out {heldout_part(results)} examples"]
        for number, example in enumerate(results["examples"], start=1):
            lines += ["", f"### {number}. (row {example.get('row')})", ""]
            for label, key in (("Prompt", "prompt"), ("Reference", "reference"), ("Base", "base"), ("Tuned", "tuned")):
                quoted = "\n> ".join(str(example[key]).splitlines() or [""])
                lines += [f"**{label}:**", "", f"> {quoted}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _old_verdict(results: dict) -> list[str]:
    """Runs evaluated before the benchmark existed kept the probe's verdict under "forgetting"."""
    forgetting = results.get("forgetting")
    return [forgetting["verdict"]] if forgetting and forgetting.get("verdict") else []


def _general_markdown(results: dict) -> list[str]:
    general = results.get("general_ability")
    if not general:
        return ["", "## General ability", ""] + _old_verdict(results) if _old_verdict(results) else []
    lines = ["", "## General ability", "", general["summary"], "", f"Benchmark: {general['benchmark']}. "
             f"{general['method']}", "", "| task | chance | base | tuned | difference |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in general_rows(general)]
    lines += ["", "```"]
    for row in general["per_task"]:
        lines += [f"{row['title'][:34]:34s} base  {_bar(row['base']['accuracy'])} {percent(row['base']['accuracy'])}",
                  f"{'':34s} tuned {_bar(row['tuned']['accuracy'])} {percent(row['tuned']['accuracy'])}"]
    lines += ["```"]
    lines += [f"- {advice}" for advice in general["advice"]]
    probe = results.get("probe")
    if probe:
        lines += ["", "### Probe questions (strict grading)", "", f"Graded {probe['grading']}.", "",
                  "| question | base | tuned |", "|---|---|---|"]
        for b, t in zip(probe["base"]["answers"], probe["tuned"]["answers"]):
            lines.append(f"| {b['prompt']} | {_mark(b)} {_cell(b['reply'])} | {_mark(t)} {_cell(t['reply'])} |")
    return lines


def _mark(answer: dict) -> str:
    return "✔" if answer["right"] else "✘"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:80]


def _general_html(results: dict) -> list[str]:
    e = html.escape
    general = results.get("general_ability")
    if not general:
        old = _old_verdict(results)
        return ["<h2>General ability</h2>", f"<p>{e(old[0])}</p>"] if old else []
    parts = ["<h2>General ability</h2>", f"<p><b>{e(general['summary'])}</b></p>",
             f"<p><small>Benchmark: {e(general['benchmark'])}. {e(general['method'])}</small></p>",
             "<table><tr><th>task</th><th>chance</th><th>base</th><th>tuned</th><th>difference</th></tr>"
             + "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in general_rows(general))
             + "</table>", "<div class='bars'>"]
    for row in general["per_task"]:
        parts.append(f"<div class='task'>{e(row['title'])}</div><div>")
        for side in ("base", "tuned"):
            block = row[side]
            low, high = block["ci"]
            parts.append(f"<div class='bar {side}'><span style='width:{100 * block['accuracy']:.1f}%'></span>"
                         f"<i style='left:{100 * low:.1f}%;width:{100 * (high - low):.1f}%'></i>"
                         f"<b style='left:{100 * row['chance']:.1f}%'></b><em>{side} {percent(block['accuracy'])}</em></div>")
        parts.append("</div>")
    parts.append("</div><p><small>Bars: share of questions answered right (blue: base, orange: tuned); the thin "
                 "line is the 95% interval, the grey mark the chance level.</small></p>")
    if general["advice"]:
        parts.append("<ul>" + "".join(f"<li>{e(a)}</li>" for a in general["advice"]) + "</ul>")
    probe = results.get("probe")
    if probe:
        parts += ["<h3>Probe questions (strict grading)</h3>", f"<p><small>Graded {e(probe['grading'])}.</small></p>",
                  "<table><tr><th>question</th><th>base</th><th>tuned</th></tr>"]
        for b, t in zip(probe["base"]["answers"], probe["tuned"]["answers"]):
            parts.append(f"<tr><td>{e(b['prompt'])}</td><td>{_mark(b)} {e(_cell(b['reply']))}</td>"
                         f"<td>{_mark(t)} {e(_cell(t['reply']))}</td></tr>")
        parts.append("</table>")
    return parts


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .7rem;text-align:left}"
          ".ex{display:grid;grid-template-columns:8rem 1fr;gap:.3rem 1rem;margin-bottom:1.5rem}"
          ".ex div{white-space:pre-wrap}.label{font-weight:600;color:#555}"
          ".bars{display:grid;grid-template-columns:16rem 1fr;gap:.4rem 1rem;align-items:center;margin:1rem 0}"
          ".bar{position:relative;height:1.1rem;background:#f1f1f1;margin:2px 0}"
          ".bar span{position:absolute;left:0;top:0;bottom:0}.bar.base span{background:#1f77b4}"
          ".bar.tuned span{background:#e67814}.bar i{position:absolute;top:45%;height:2px;background:#222}"
          ".bar b{position:absolute;top:0;bottom:0;width:2px;background:#888}"
          ".bar em{position:absolute;left:.3rem;top:0;font-size:.75rem;font-style:normal;color:#fff}")


def to_html(results: dict, png: Optional[bytes], run: RunFolder) -> str:
    """The report as one HTML page; the chart is embedded as base64, so the file stands alone."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(_title(results))}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{e(_title(results))}</h1>",
             f"<p>Method: {e(results['method'])} &middot; base model: <code>{e(results['base_model_path'])}</code> "
             f"&middot; evaluated {e(results.get('created', ''))} on {e(results.get('device', ''))}.</p>",
             f"<p>{e(heldout_line(results))}</p>",
             "<ul>" + "".join(f"<li>{e(line)}</li>" for line in results.get("summary", [])) + "</ul>",
             "<table><tr><th></th><th>base</th><th>tuned</th></tr>"
             + "".join(f"<tr><td>{e(name)}</td><td>{e(base)}</td><td>{e(tuned)}</td></tr>"
                       for name, base, tuned in comparison_rows(results))
             + "</table>"]
    parts += preference_html(results)
    parts += _general_html(results)
    if png:
        parts += ["<h2>Training curves</h2>", f"<img alt='{e(_chart_caption())}' "
                  f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>",
                  f"<p><small>{e(_chart_caption())}</small></p>"]
    if results["examples"]:
        parts.append(f"<h2>Held-out {heldout_part(results)} examples</h2>")
        for number, example in enumerate(results["examples"], start=1):
            parts.append(f"<h3>{number}. (row {e(str(example.get('row')))})</h3><div class='ex'>")
            for label, key in (("Prompt", "prompt"), ("Reference", "reference"), ("Base", "base"), ("Tuned", "tuned")):
                parts.append(f"<span class='label'>{label}</span><div>{e(str(example[key]))}</div>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report_files(run: RunFolder, results: dict) -> None:
    """RUN/eval/loss.png and RUN/eval/report.html, written beside results.json."""
    from engine import atomic

    png = chart_png(run)
    if png:
        atomic.write_bytes(run.eval_dir / CHART_FILE, png)
    atomic.write_text(run.eval_dir / "report.html", to_html(results, png, run))


def export_report(run_dir, out, fmt: Optional[str] = None) -> Path:
    """Write the saved evaluation of a run as one self-contained file; `fmt` is "html" or "md"
    (default: from the file name's ending). Raises EvaluationError when the run was never evaluated."""
    from engine.evaluate.before_after import load_results

    run = open_run(run_dir)
    results = load_results(run.path)
    if results is None:
        raise EvaluationError(f"{run.path}: this run has not been evaluated yet. Run `tunesmith-cli eval "
                              f"{run.path}` (or Evaluate in the window) first.")
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() in (".md", ".markdown") else "html")
    if fmt not in FORMATS:
        raise EvaluationError(f"Report format '{fmt}': choose html or md.")
    png = chart_png(run)
    text = to_markdown(results, png, run) if fmt == "md" else to_html(results, png, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
