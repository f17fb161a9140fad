"""`labelgate bench`: one run that measures the serving process on this machine — the gate, every node inside the
graph, the non-LLM path over a knowledge base grown to N chunks, LangGraph's own overhead, throughput under concurrent
callers, the LLM-only baseline, peak memory — plus indexing and training cost (run in child processes so their memory
does not count as the serving process's). Keys are documented in the README."""

from __future__ import annotations

import dataclasses
import platform
import random
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from app.core.components import Components
from app.core.data import DemoData, load_examples
from app.ops.eval.latency import bench_gate, percentiles
from graph.state import apply_update
from nodes.classify import Classify
from nodes.extract import Extract
from nodes.rerank import Rerank
from nodes.retrieve import Retrieve
from nodes.vote import Vote

WARMUP = 5  # first calls fill caches and lazy inits; not counted


def bench_queries(components: Components, count: int, seed: int = 5) -> list[str]:
    """`count` demo queries: test, then dev, then train rows, shuffled (repeats only past all 1,477)."""
    data = DemoData(components.settings.data_dir)
    pool = [ex.text for name in ("test", "dev", "train") for ex in load_examples(data.split(name), components.taxonomy)]
    picked = (pool * (count // len(pool) + 1))[:count]
    random.Random(seed).shuffle(picked)
    return picked


def rss_mb() -> dict[str, float]:
    """Current and peak resident set size of this process."""
    current = 0.0
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"rss_mb": round(current, 1), "peak_rss_mb": round(peak, 1)}


def bench_path(components: Components, queries: Sequence[str]) -> dict[str, Any]:
    """classify → vote → retrieve → rerank called directly, per query: the non-LLM path to a reranked top-k."""
    s, tax = components.settings, components.taxonomy
    steps: dict[str, Any] = {
        "classify": Classify(components.voters, max_query_chars=s.max_query_chars),
        "vote": Vote(tax, s.vote),
        "retrieve": Retrieve(
            components.kb, tax, top_k=s.top_k, fetch_k=s.fetch_k, reliability=components.label_reliability()
        ),
        "rerank": Rerank(tax, s.rerank, top_k=s.top_k, reliability=components.label_reliability()),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*steps, "path"]}
    for query in [*queries[:WARMUP], *queries]:
        state: dict[str, Any] = {"query": query}
        begin = time.perf_counter()
        for name, step in steps.items():
            start = time.perf_counter()
            state = apply_update(state, step(state))
            samples[name].append((time.perf_counter() - start) * 1000)
        samples["path"].append((time.perf_counter() - begin) * 1000)
    return {name: percentiles(values[WARMUP:]) for name, values in samples.items()}


class NodeTimer(BaseCallbackHandler):
    """Wall time of each graph node run, from LangChain's chain start/end callbacks (thread-safe)."""

    def __init__(self) -> None:
        self.open: dict[Any, tuple[str, float]] = {}
        self.samples: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        node = (kwargs.get("metadata") or {}).get("langgraph_node")
        if node and kwargs.get("name") == node:
            with self.lock:
                self.open[run_id] = (node, time.perf_counter())

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        with self.lock:
            started = self.open.pop(run_id, None)
            if started:
                self.samples.setdefault(started[0], []).append((time.perf_counter() - started[1]) * 1000)

    on_chain_error = on_chain_end  # type: ignore[assignment]


def bench_graph(
    components: Components, queries: Sequence[str], callers: Sequence[int], per_level: int
) -> dict[str, Any]:
    """Every query through the compiled graph (SQLite checkpointer, no LLM: escalations stop at review): per-node
    latency, invoke latency and LangGraph's share of it; then throughput through `Assistant.ask` for each number of
    concurrent callers."""
    from app.core.checkpoints import sqlite_checkpointer
    from app.service.api import Assistant

    with tempfile.TemporaryDirectory(prefix="labelgate-bench-") as tmp:
        saver_settings = components.settings.model_copy(update={"home": Path(tmp)})
        assistant = Assistant(components, checkpointer=sqlite_checkpointer(saver_settings))
        for query in queries[:WARMUP]:
            assistant.ask(query)
        timer = NodeTimer()
        config: dict[str, Any] = {"callbacks": [timer]}
        invoke, overhead, paths = [], [], {"auto": 0, "review": 0}
        for query in queries:
            before = {name: len(v) for name, v in timer.samples.items()}
            start = time.perf_counter()
            thread: Any = {"configurable": {"thread_id": uuid.uuid4().hex}} | config
            out = assistant.graph.invoke({"query": query}, thread)
            total = (time.perf_counter() - start) * 1000
            nodes = sum(sum(v[before.get(name, 0) :]) for name, v in timer.samples.items())
            invoke.append(total)
            overhead.append(total - nodes)
            paths["review" if "__interrupt__" in out else "auto"] += 1
        result: dict[str, Any] = {
            "nodes": {name: percentiles(v) | {"runs": len(v)} for name, v in sorted(timer.samples.items())},
            "invoke": percentiles(invoke),
            "langgraph_overhead": percentiles(overhead),
            "ended": paths,
        }
        result["throughput"] = {str(n): throughput(assistant, queries, n, per_level) for n in callers}
    return result


def throughput(assistant: Any, queries: Sequence[str], callers: int, total: int) -> dict[str, float]:
    """Queries per second through Assistant.ask with `callers` threads sharing one Assistant."""
    work = [queries[i % len(queries)] for i in range(total)]
    latencies: list[float] = []

    def ask(query: str) -> None:
        start = time.perf_counter()
        assistant.ask(query)
        latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(ask, work))
    seconds = time.perf_counter() - start
    return {"queries_per_s": round(total / seconds, 1), "p50_ms": percentiles(latencies)["p50_ms"], "queries": total}


def bench_llm_only(components: Components, queries: Sequence[str]) -> dict[str, Any]:
    """The LLM labelling each query alone (taxonomy-bound json_schema, as LLM question classifiers do)."""
    if components.llm is None or not queries:
        return {"queries": 0, "skipped": "no LLM configured"}
    extract = Extract(components.llm, components.taxonomy)
    extract({"query": queries[0]})  # type: ignore[arg-type]  # warm the server's prompt cache
    samples, failed = [], 0
    for query in queries:
        start = time.perf_counter()
        out = extract({"query": query})  # type: ignore[arg-type]
        samples.append((time.perf_counter() - start) * 1000)
        failed += any(r.startswith(("extract_skipped", "extract_failed")) for r in out["reasons"])
    return {"queries": len(queries), "failed": failed, **percentiles(samples)}


def run_bench(
    components: Components,
    grown: Any,
    *,
    queries: int,
    llm_queries: int,
    callers: Sequence[int] = (1, 4, 16),
    per_level: int = 200,
) -> dict[str, Any]:
    """The in-process part of `labelgate bench`: `grown` is the knowledge base grown to N chunks."""
    loaded = rss_mb()
    picked = bench_queries(components, queries)
    serving = dataclasses.replace(components, kb=grown, llm=None)
    gate = bench_gate(serving, picked)
    path = bench_path(serving, picked)
    graph = bench_graph(serving, picked, callers, per_level)
    memory = rss_mb()
    llm = bench_llm_only(components, picked[:llm_queries])
    speedup = round(llm["p50_ms"] / gate["gate_p50_ms"], 1) if llm.get("p50_ms") else None
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": components.settings.threads,
        "queries": len(picked),
        "kb_chunks": grown.count(),
        "runtime_a": gate["runtime_a"],
        "gate_p50_ms": gate["gate_p50_ms"],
        "gate_p95_ms": gate["gate"]["p95_ms"],
        "path_p50_ms": path["path"]["p50_ms"],
        "path_p95_ms": path["path"]["p95_ms"],
        "llm_only_p50_ms": llm.get("p50_ms"),
        "speedup_vs_llm_only": speedup,
        "auto_share": gate["auto_share"],
        "peak_rss_mb": memory["peak_rss_mb"],
        "rss_after_load_mb": loaded["rss_mb"],
        "langgraph_overhead_p50_ms": graph["langgraph_overhead"]["p50_ms"],
        "throughput_qps": {n: level["queries_per_s"] for n, level in graph["throughput"].items()},
        "gate": gate,
        "path": path,
        "graph": graph,
        "llm_only": llm,
    }
