"""`labelgate soak` / `make soak`: bounded reliability scripts (durable reviews, load, faults).

Each script is a module with `run(settings: Settings, workdir: Path, *, quick: bool) -> SoakResult`; it works in its own
scratch directory under `workdir`, counts what went wrong in the five counters below (zero when healthy) and keeps its
figures (rates, p99, faults injected…) for the JSON report. `summary_line` is the one line `make soak` ends with.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.core.config import Settings

COUNTERS = ("reviews_lost", "feedback_lost", "feedback_doubled", "errors", "leaks")
SCRIPTS = {"durable": "app.ops.soak.durable", "load": "app.ops.soak.load", "faults": "app.ops.soak.faults"}


@dataclass
class SoakResult:
    name: str
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, counter: str, n: int = 1) -> None:
        if counter not in COUNTERS:
            raise KeyError(f"unknown soak counter {counter!r}; one of {', '.join(COUNTERS)}")
        self.counters[counter] = self.counters.get(counter, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "counters": dict(self.counters), "figures": self.figures, "seconds": self.seconds}


def totals(results: Iterable[SoakResult]) -> dict[str, int]:
    results = list(results)
    return {name: sum(r.counters.get(name, 0) for r in results) for name in COUNTERS}


def summary_line(results: Iterable[SoakResult]) -> str:
    """`soak: reviews_lost=0 feedback_lost=0 feedback_doubled=0 errors=0 leaks=0` (all zero when healthy)."""
    return "soak: " + " ".join(f"{name}={n}" for name, n in totals(results).items())


def run_scripts(settings: Settings, names: Iterable[str], workdir: Path, *, quick: bool = False) -> list[SoakResult]:
    out = []
    for name in names:
        if name not in SCRIPTS:
            raise KeyError(f"unknown soak script {name!r}; one of {', '.join(SCRIPTS)}")
        module = importlib.import_module(SCRIPTS[name])
        out.append(module.run(settings, workdir / name, quick=quick))
    return out
