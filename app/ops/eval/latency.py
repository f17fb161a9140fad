"""`labelgate bench gate`: per-query latency of the gate (classify + vote nodes) on this machine."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.components import Components
from nodes.classify import Classify
from nodes.vote import Vote


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(samples_ms, dtype=float)
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 3) for q in (50, 95, 99)} | {
        "mean_ms": round(float(values.mean()), 3)
    }


def bench_gate(components: Components, queries: Sequence[str], *, warmup: int = 5) -> dict[str, Any]:
    """Time classify + vote one query at a time, as a chat service calls them (no batching across users)."""
    classify = Classify(components.voters, max_query_chars=components.settings.max_query_chars)
    vote = Vote(components.taxonomy, components.settings.vote)
    for query in queries[:warmup]:
        vote(classify({"query": query}))  # type: ignore[arg-type]
    gate: list[float] = []
    per_voter: dict[str, list[float]] = {voter.name: [] for voter in components.voters}
    auto = 0
    for query in queries:
        for voter in components.voters:
            start = time.perf_counter()
            voter.outputs([query])
            per_voter[voter.name].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        state: dict[str, Any] = {"query": query}
        state |= classify(state)  # type: ignore[arg-type]
        state |= vote(state)  # type: ignore[arg-type]
        gate.append((time.perf_counter() - start) * 1000)
        auto += state["decision"] == "auto"
    return {
        "queries": len(queries),
        "threads": components.settings.threads,
        "runtime_a": components.voters[0].meta.get("runtime", "torch"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "gate": percentiles(gate),
        "gate_p50_ms": percentiles(gate)["p50_ms"],
        "voters": {name: percentiles(samples) for name, samples in per_voter.items()},
        "auto_share": round(auto / max(len(queries), 1), 4),
    }
