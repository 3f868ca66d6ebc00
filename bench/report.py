"""From the runs' results to rows of the final table: value per side, ratio, target, verdict.

Repeated runs are summarised by their median. A row whose numbers are missing (a piece of
Tunesmith not built yet, a failed run) says "not available" and why, never a made-up value.
"""
from __future__ import annotations

import re
from statistics import median
from typing import Any, Callable, Optional

NA = "not available"


def group(results: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Merge repeated labels ('ours-lora-1', 'ours-lora-2') into one list per run kind."""
    merged: dict[str, list[dict]] = {}
    for label, items in results.items():
        merged.setdefault(re.sub(r"-\d+$", "", label), []).extend(items)
    return merged


def ok(items: list[dict]) -> list[dict]:
    return [r for r in items if "error" not in r and "unavailable" not in r]


def why_missing(items: list[dict]) -> str:
    for r in items:
        if "unavailable" in r:
            return r["unavailable"]
        if "error" in r:
            return "failed: " + str(r["error"])[:160]
    return "not run"


def med(items: list[dict], get: Callable[[dict], Any]) -> Optional[float]:
    """Median of a number over the successful runs (None when no run has it)."""
    values = []
    for r in ok(items):
        try:
            value = get(r)
        except (KeyError, TypeError):
            value = None
        if isinstance(value, (int, float)):
            values.append(float(value))
    return median(values) if values else None


def speed(r: dict) -> Optional[float]:
    return r["throughput"]["tokens_per_s"]


def memory(r: dict) -> Optional[float]:
    """Peak memory of a training run: GPU reserved on CUDA, resident set on CPU (MiB)."""
    return r.get("gpu_peak_mb") or r.get("peak_rss_mb")


def row(section: str, metric: str, ours=None, base=None, *, ratio: Optional[float] = None, target: str = "",
        met: Optional[bool] = None, note: str = "", unit: str = "") -> dict:
    if met is None:
        verdict = "" if not target else NA
    else:
        verdict = "met" if met else "MISSED"
    return {"section": section, "metric": metric, "ours": ours, "baseline": base, "ratio": ratio, "unit": unit,
            "target": target, "verdict": verdict, "note": note}


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b not in (None, 0) else None


def training_rows(section: str, g: dict, ours_key: str, base_key: str, bf16_key: str, cpu: bool,
                  our_precision: str = "bf16") -> list[dict]:
    """Speed, memory, first loss and quality of one race between our engine and the baseline.

    our_precision: what our engine trained in; when it is fp32 (a CPU without native bf16), the
    default baseline already has the same precision and the same-precision row compares with it.
    """
    ours, base = g.get(ours_key, []), g.get(base_key, [])
    same_as_default = our_precision == "fp32"
    bf16 = base if same_as_default else g.get(bf16_key, [])
    missing = why_missing(ours) if not ok(ours) else why_missing(base) if not ok(base) else ""
    rows = []
    o, b = med(ours, speed), med(base, speed)
    r = _ratio(o, b)
    rows.append(row(section, "trained tokens/s vs baseline (default precision)", o, b, ratio=r, unit="tok/s",
                    target=">= 3x" if cpu else "", met=None if r is None or not cpu else r >= 3, note=missing))
    if bf16_key:
        b16 = med(bf16, speed)
        r16 = _ratio(o, b16)
        note = "" if ok(bf16) else why_missing(bf16)
        if same_as_default:
            note = ("ours trains in fp32 here (no native bf16 on this CPU), so the default baseline already has "
                    "the same precision")
        rows.append(row(section, "trained tokens/s vs baseline in the same precision as ours", o, b16,
                        ratio=r16, unit="tok/s", target=">= 1.5x" if cpu else "",
                        met=None if r16 is None or not cpu else r16 >= 1.5, note=note))
    om, bm = med(ours, memory), med(base, memory)
    rm = _ratio(om, bm)
    rows.append(row(section, "peak memory (" + ("RSS" if cpu else "GPU reserved") + ")", om, bm, ratio=rm,
                    unit="MiB", target="<= 0.5x" if cpu else "", met=None if rm is None or not cpu else rm <= 0.5))
    of, bf = med(ours, lambda x: x["first_loss_after_load_s"]), med(base, lambda x: x["first_loss_after_load_s"])
    rows.append(row(section, "first loss value, seconds after the model is loaded", of, bf, ratio=_ratio(of, bf),
                    unit="s", target="<= 5 s", met=None if of is None else of <= 5.0))
    os_, bs = med(ours, lambda x: x["first_loss_s"]), med(base, lambda x: x["first_loss_s"])
    rows.append(row(section, "first loss value, seconds after the process started", os_, bs,
                    ratio=_ratio(os_, bs), unit="s"))
    ol, bl = med(ours, lambda x: x["score"]["heldout_loss"]), med(base, lambda x: x["score"]["heldout_loss"])
    diff = None if ol is None or not bl else abs(ol - bl) / bl
    untrained = med(ours, lambda x: x["score"]["base_heldout_loss"])
    rows.append(row(section, "held-out loss after equal tokens (one epoch, same rows)", ol, bl, ratio=_ratio(ol, bl),
                    target="within 2%", met=None if diff is None else diff <= 0.02,
                    note=f"untrained model: {untrained:.4f}" if untrained else ""))
    ot, bt = med(ours, lambda x: x["tail_train_loss"]), med(base, lambda x: x["tail_train_loss"])
    rows.append(row(section, "training loss, mean of the last quarter of steps", ot, bt, ratio=_ratio(ot, bt),
                    note="order and packing differ between sides; the held-out row is the parity check"))
    return rows


def lever_rows(g: dict, plan, default_key: str) -> list[dict]:
    """Each lever's effect: our default run against the same run with only that lever off."""
    from bench.plan import levers_for

    rows = []
    default = g.get(default_key, [])
    for name, (key, off) in levers_for(plan.mode).items():
        if name in plan.levers_unavailable:
            rows.append(row("levers", f"{name}: speed-up ({key}={off} is off)", note=NA + ": "
                            + plan.levers_unavailable[name]))
            continue
        off_runs = g.get(f"lever-off-{key}", [])
        on, offs = med(default, speed), med(off_runs, speed)
        note = "" if ok(off_runs) and ok(default) else why_missing(off_runs if not ok(off_runs) else default)
        rows.append(row("levers", f"{name}: tokens/s on vs off ({key}={off})", on, offs, ratio=_ratio(on, offs),
                        unit="tok/s", note=note))
        mem_on, mem_off = med(default, memory), med(off_runs, memory)
        rows.append(row("levers", f"{name}: peak memory on vs off", mem_on, mem_off, ratio=_ratio(mem_on, mem_off),
                        unit="MiB"))
    return rows


def stop_rows(g: dict, default_key: str) -> list[dict]:
    """Stop latency against one step (measured on the full training run when there is one: the
    stop run ends early, so its own steps include more of the warm-up)."""
    ours, base = g.get("stop-ours", []), g.get("stop-baseline", [])
    latency = med(ours, lambda x: x["stop"]["latency_s"])
    step = med(g.get(default_key, []), lambda x: x["median_step_s"]) or med(ours, lambda x: x["median_step_s"])
    usable = bool(ok(ours)) and all(r["stop"]["adapter_ok"] for r in ok(ours))
    stopped = all(r["stop"].get("reason") == "stopped" for r in ok(ours))
    met = None if latency is None or step is None else (latency <= step + 5.0 and usable and stopped)
    if not ok(ours):
        note = why_missing(ours)
    elif not stopped:
        note = "the run ended before the stop took effect (too few steps): raise --examples"
    else:
        note = f"one step takes {step:.2f} s; adapter usable: {usable}" if step is not None else ""
    blat = med(base, lambda x: x["stop"]["latency_s"])
    return [row("stop", "stop latency (stop asked mid-step -> run returned with adapter)", latency, blat,
                ratio=_ratio(latency, blat), unit="s", target="<= one step + 5 s", met=met, note=note)]


def chat_rows(g: dict) -> list[dict]:
    ours, base = g.get("chat-ours", []), g.get("chat-baseline", [])
    note = "" if ok(ours) else why_missing(ours)
    rows = []
    for moment in ("cold", "warm"):
        o, b = med(ours, lambda x: x[moment]["first_token_s"]), med(base, lambda x: x[moment]["first_token_s"])
        rows.append(row("chat", f"time to first token ({moment}: {'first' if moment == 'cold' else 'second'} "
                        "answer after loading)", o, b, ratio=_ratio(o, b), unit="s", target="< 1 s",
                        met=None if o is None else o < 1.0, note=note))
    o, b = med(ours, lambda x: x["warm"]["decode_tokens_per_s"]), med(base, lambda x: x["warm"]["decode_tokens_per_s"])
    rows.append(row("chat", "decode tokens/s (after the first token)", o, b, ratio=_ratio(o, b), unit="tok/s",
                    target=">= 25", met=None if o is None else o >= 25, note=note))
    return rows


def inspect_rows(g: dict, rows_count: int) -> list[dict]:
    ours, base = g.get("inspect-ours", []), g.get("inspect-baseline", [])
    o, b = med(ours, lambda x: x["total_s"]), med(base, lambda x: x["total_s"])
    note = why_missing(ours) if not ok(ours) else next((r.get("stats_unavailable") for r in ok(ours)
                                                        if r.get("stats_unavailable")), "") or ""
    return [row("inspect", f"inspect + token statistics of {rows_count:,} rows", o, b, ratio=_ratio(o, b), unit="s",
                target="<= 20 s" if rows_count >= 100_000 else "", met=None if o is None or rows_count < 100_000
                else o <= 20.0, note=note or "baseline: datasets.load_dataset + batched tokenization")]


def lag_rows(g: dict) -> list[dict]:
    runs = g.get("lag", [])
    note = why_missing(runs) if not ok(runs) else ""
    targets = {"p50_ms": ("", None), "p99_ms": ("<= 16 ms", 16.0), "max_ms": ("<= 100 ms", 100.0)}
    rows = []
    for key, (target, limit) in targets.items():
        value = med(runs, lambda x: x[key])
        met = None if value is None or limit is None else value <= limit
        rows.append(row("lag", f"window event-loop lag during training, {key[:-3]}", value, unit="ms",
                        target=target, met=met, note=note))
    return rows


def estimate_bytes(estimate: dict) -> Optional[float]:
    """The predicted peak in bytes from whatever shape engine.train.estimate_memory returned."""
    if not isinstance(estimate, dict):
        return None
    if isinstance(estimate.get("bytes"), (int, float)):
        return float(estimate["bytes"])
    raw = estimate.get("raw")
    if isinstance(raw, dict):
        for key in ("total_bytes", "peak_bytes", "total", "bytes"):
            if isinstance(raw.get(key), (int, float)):
                return float(raw[key])
    return None


def memory_estimate_rows(g: dict) -> list[dict]:
    """Predicted (engine.train.estimate_memory) against measured peak for every kind of our runs."""
    rows = []
    for label, items in sorted(g.items()):
        if not (label.startswith("ours-") or label.startswith("lever-off-")) or not ok(items):
            continue
        predicted = med(items, lambda x: estimate_bytes(x["memory_estimate"]))
        measured = med(items, memory)
        if predicted is None:
            why = next((r["memory_estimate"].get("error") for r in ok(items)
                        if isinstance(r.get("memory_estimate"), dict) and r["memory_estimate"].get("error")), "")
            rows.append(row("memory estimate", f"{label}: predicted vs measured peak", None, measured,
                            unit="MiB", target="within 20%", note=NA + (": " + why if why else "")))
            continue
        predicted /= 2**20
        r = _ratio(predicted, measured)
        rows.append(row("memory estimate", f"{label}: predicted vs measured peak", predicted, measured, ratio=r,
                        unit="MiB", target="within 20%", met=None if r is None else abs(r - 1) <= 0.2))
    return rows


def build_rows(results: dict[str, list[dict]], plan) -> list[dict]:
    """Every row of the final table, in the order the sections ran."""
    g = group(results)
    cpu = plan.workload.device == "cpu"
    kind = "lora" if cpu else "qlora"
    sections, rows = plan.sections, []
    if "train" in sections:
        rows += training_rows("train", g, f"ours-{kind}", f"baseline-{kind}", f"baseline-{kind}-bf16", cpu,
                              plan.settings.get("our_precision", "bf16"))
    if "qlora" in sections:
        rows += training_rows("qlora", g, "ours-qlora", "baseline-qlora", "", cpu)
    if "big" in sections:
        rows += training_rows("big (random 1B)", g, "ours-1b-qlora", "baseline-1b-qlora", "", cpu)[:3]
    if "levers" in sections:
        rows += lever_rows(g, plan, f"ours-{kind}")
    if "stop" in sections:
        rows += stop_rows(g, f"ours-{kind}")
    if "chat" in sections:
        rows += chat_rows(g)
    if "inspect" in sections:
        rows += inspect_rows(g, plan.settings.get("inspect_rows", 0))
    if "lag" in sections:
        rows += lag_rows(g)
    rows += memory_estimate_rows(g)
    return rows


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def format_table(rows: list[dict]) -> str:
    """A plain-text table: section, metric, ours (lever on), baseline (lever off), ratio, target, verdict, note."""
    header = ("section", "metric", "ours / on", "baseline / off", "ratio", "target", "verdict")  # levers: on vs off
    lines = [[r["section"], r["metric"], _fmt(r["ours"], r["unit"]), _fmt(r["baseline"], r["unit"]),
              "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"] or "-",
              r["verdict"] or "-"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)] if lines else [len(h) for h in header]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    for r, line in zip(rows, lines):
        out.append("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
        if r["note"]:
            out.append(" " * (widths[0] + 2) + "note: " + r["note"])
    return "\n".join(out)
