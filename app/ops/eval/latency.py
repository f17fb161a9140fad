"""`labelgate bench gate`: per-query latency of the gate (classify + vote nodes) on this machine; `labelgate bench
log`: the decision log's CPU cost per query against its targets."""

from __future__ import annotations

import dataclasses
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.core.components import Components
from graph.state import apply_update
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
        state = apply_update(state, classify(state))  # type: ignore[arg-type]
        state = apply_update(state, vote(state))  # type: ignore[arg-type]
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


# Targets of `labelgate bench log` (the decision log must stay invisible next to a query's ~10-50 ms).
RECORDER_TARGET_MS = 1.0  # CPU per ask in the recorder's callbacks, on the query's own thread
WRITER_TARGET_MS = 2.0  # CPU per row in the writer thread, one row per transaction


def _thread_cpu(method: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    return timed


def bench_decision_log(components: Components, queries: Sequence[str], *, rows: int = 200) -> dict[str, Any]:
    """CPU time the decision log costs, in a scratch SQLite log: the recorder's graph callbacks on the query's own
    thread per ask (the LLM is off: escalations stop at review), then the writer's inserts per row — `rows` // 2 rows
    one per transaction, and the same number in one batch — with the figures' targets and whether they are met."""
    from langgraph.checkpoint.memory import InMemorySaver

    from app.core.decisionlog import ROW_KEYS, DecisionLog
    from app.service.api import Assistant

    with tempfile.TemporaryDirectory(prefix="labelgate-bench-log-") as tmp:
        store = DecisionLog(f"sqlite:///{Path(tmp) / 'decisions.sqlite'}")
        try:
            logged = dataclasses.replace(components, decisions=store, llm=None, feedback=None)
            assistant = Assistant(logged, checkpointer=InMemorySaver())
            callbacks: Any = (assistant.graph.config or {}).get("callbacks")
            [recorder] = callbacks  # graph/recorder.py's DecisionRecorder: the log is on
            spent = [0.0]
            for name in ("on_chain_start", "on_chain_end", "on_chain_error"):
                setattr(recorder, name, _thread_cpu(getattr(recorder, name), spent))
            for query in queries:
                assistant.ask(query)
            store.flush()
            recorded = [{key: getattr(row, key) for key in ROW_KEYS} for row in store.rows(since=0, until=1e12)]
            logged_asks = len(recorded)
            sample = [recorded[i % len(recorded)] for i in range(rows)] if recorded else []
            half = len(sample) // 2
            started = time.thread_time()
            for row in sample[:half]:
                store._insert([row])
            single = (time.thread_time() - started) / max(half, 1) * 1000
            started = time.thread_time()
            store._insert(sample[half : 2 * half])
            batched = (time.thread_time() - started) / max(half, 1) * 1000
            written = store.written
        finally:
            store.close()
    recorder_ms = spent[0] / max(len(queries), 1) * 1000
    return {
        "queries": len(queries),
        "logged": logged_asks,
        "rows_written": written,
        "recorder_cpu_ms_per_ask": round(recorder_ms, 4),
        "recorder_target_ms": RECORDER_TARGET_MS,
        "writer_cpu_ms_per_row": round(single, 4),
        "writer_cpu_ms_per_row_batched": round(batched, 4),
        "writer_target_ms": WRITER_TARGET_MS,
        "ok": recorder_ms < RECORDER_TARGET_MS and single < WRITER_TARGET_MS and batched <= single,
    }
