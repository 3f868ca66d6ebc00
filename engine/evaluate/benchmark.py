"""The general-ability benchmark file: public multiple-choice questions in several task types.

resources/benchmarks/general-v1.json is drawn by resources/benchmarks/make_subset.py (sources,
licences and the draw are in SOURCES.md there). Within each task the items are in a seeded random
order, so the first k of a task are themselves a random sample: that is how the smaller sizes are cut.

    full   every item (the default for evaluation)
    quick  the first third of each task: three times faster, intervals about 1.7 times wider
    live   the first LIVE_PER_TASK of each task: scored at every validation during training
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

BENCHMARK_FILE = "general-v1.json"
SIZES = ("quick", "full")
LIVE_PER_TASK = 4


def builtin_benchmark_file() -> Path:
    """resources/benchmarks/general-v1.json, from a checkout or an installed copy alike."""
    from importlib.resources import files

    return Path(str(files("resources") / "benchmarks" / BENCHMARK_FILE))


@dataclass(frozen=True)
class BenchmarkTask:
    id: str
    title: str
    kind: str  # knowledge | commonsense | reasoning | language
    normalise: str  # "chars": a choice's log-likelihood is divided by its length in characters; "none"
    licence: str = ""


@dataclass(frozen=True)
class BenchmarkItem:
    task: str
    question: str
    choices: tuple
    answer: int
    source: str = ""

    @property
    def key(self) -> str:
        """Stable identity of the item (for caches): task and where it came from."""
        return f"{self.task}|{self.source}|{self.question[:80]}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: str
    digest: str
    tasks: tuple
    items: tuple
    size: str = "full"
    path: str = ""

    @property
    def label(self) -> str:
        """How reports name it, e.g. "Tunesmith general ability v1 (full, 360 questions)"."""
        return f"{self.name} v{self.version} ({self.size}, {len(self.items)} questions)"

    def task(self, task_id: str) -> BenchmarkTask:
        return next(t for t in self.tasks if t.id == task_id)

    def chance(self, task_id: Optional[str] = None) -> float:
        """The accuracy of guessing: the mean of 1/choices over the items (of one task, or all)."""
        items = [i for i in self.items if task_id is None or i.task == task_id]
        return sum(1 / len(i.choices) for i in items) / len(items) if items else 0.0

    def sized(self, size: str) -> "Benchmark":
        """The "full", "quick" or "live" cut described in the module docstring."""
        if size == "full":
            return replace(self, size="full")
        if size not in ("quick", "live"):
            raise ValueError(f"benchmark size '{size}': choose quick or full")
        keep: list[BenchmarkItem] = []
        for task in self.tasks:
            items = [i for i in self.items if i.task == task.id]
            count = LIVE_PER_TASK if size == "live" else math.ceil(len(items) / 3)
            keep += items[:count]
        return replace(self, items=tuple(keep), size=size)


def load_benchmark(path=None) -> Benchmark:
    """Read a benchmark file (default: the built-in one); a damaged file raises EvaluationError."""
    from engine.evaluate.runfolder import EvaluationError

    path = Path(path) if path else builtin_benchmark_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tasks = tuple(BenchmarkTask(id=t["id"], title=t["title"], kind=t.get("kind", ""),
                                    normalise=t.get("normalise", "none"), licence=t.get("licence", ""))
                      for t in data["tasks"])
        items = tuple(BenchmarkItem(task=i["task"], question=i["question"], choices=tuple(i["choices"]),
                                    answer=int(i["answer"]), source=i.get("source", "")) for i in data["items"])
    except OSError as exc:
        raise EvaluationError(f"{path}: the benchmark file cannot be read ({exc.strerror}).") from None
    except (ValueError, KeyError, TypeError):
        raise EvaluationError(f"{path}: not a benchmark file (JSON with 'tasks' and 'items'); reinstall Tunesmith "
                              "or rebuild it with resources/benchmarks/make_subset.py.") from None
    known = {t.id for t in tasks}
    for number, item in enumerate(items, start=1):
        if item.task not in known or not 0 <= item.answer < len(item.choices) or len(item.choices) < 2:
            raise EvaluationError(f"{path}, item {number}: unknown task or answer out of range.")
    return Benchmark(name=data.get("name", path.stem), version=str(data.get("version", "")),
                     digest=str(data.get("digest", "")), tasks=tasks, items=items, path=str(path))
