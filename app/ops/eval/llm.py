"""`labelgate bench extract|answer`: the escalation path's LLM on this machine — extraction accuracy where the voters
escalate, and latency of extraction and of grounded answers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.core.components import Components
from app.core.data import Example
from app.ops.eval.knn import labeller_scores
from app.ops.eval.latency import percentiles
from app.service.api import Assistant
from graph.state import apply_update
from nodes.answer import GenerateAnswer
from nodes.classify import Classify
from nodes.extract import Extract
from nodes.vote import Vote


def _require_llm(components: Components) -> None:
    from app.core.errors import LLMServerError

    if components.llm is None:
        raise LLMServerError("no LLM: set LABELGATE_LLM_BASE_URL or run `labelgate models build` for the local one")


def bench_extract(
    components: Components, rows: Sequence[Example], *, limit: int | None = None, llm: bool = True
) -> dict[str, Any]:
    """Run the gate on every row; on the escalated ones compare the LLM's labels (few-shot when the example store is
    on), the extract node's proposal (every opinion fused), voter A's and the kNN vote's with gold; and measure the
    kNN vote as a third opinion on escalations. `llm=False`: no LLM calls (the proposal from voters + kNN)."""
    from app.core.fewshot import KNN_K
    from app.ops.eval.knn import gate_row, knn_report

    if llm:
        _require_llm(components)
    tax, s = components.taxonomy, components.settings
    classify, vote = Classify(components.voters, max_query_chars=s.max_query_chars), Vote(tax, s.vote)
    extract = Extract(components.llm if llm else None, tax, components.examples, k=s.fewshot_k)
    examples = components.examples
    escalated, gate_rows = [], []
    for row in rows:
        state: dict[str, Any] = {"query": row.text}
        state = apply_update(state, classify(state))  # type: ignore[arg-type]
        flags = len(state["reasons"])
        state = apply_update(state, vote(state))  # type: ignore[arg-type]
        if examples is not None:
            shots = examples.nearest_text(row.text, max(KNN_K, s.fewshot_k))
            gate_rows.append(gate_row(tax.expand(row.labels), state, state["reasons"][flags:], shots, tax))
        if state["decision"] != "auto":
            escalated.append((row, state))
    escalated = escalated[:limit] if limit else escalated
    report: dict[str, Any] = {
        "rows": len(rows),
        "escalated": len(escalated),
        "fewshot": {"k": s.fewshot_k if examples is not None else 0, **(examples.counts() if examples else {})},
    }
    gold = [tax.expand(row.labels) for row, _ in escalated]
    pred, proposals, times, fallbacks, dropped = [], [], [], 0, 0
    for _, state in escalated:
        start = time.perf_counter()
        out = extract(state)  # type: ignore[arg-type]  # without an LLM: the proposal from voters + kNN alone
        times.append((time.perf_counter() - start) * 1000)
        fallbacks += any(r.startswith("extract_skipped") for r in out["reasons"])
        dropped += sum(int(r.rsplit(":", 1)[1]) for r in out["reasons"] if r.startswith("llm_dropped_unknown:"))
        pred.append(out["llm_labels"])
        proposals.append(out["proposal"])
    if llm:
        report["llm"] = {
            **labeller_scores(pred, gold, tax),
            "fallbacks": fallbacks,
            "dropped_unknown_labels": dropped,
            "latency": percentiles(times) if times else {},
        }
    opinions = "voters + kNN" + (" + LLM" if llm else "")
    report["proposal"] = {"opinions": opinions, **labeller_scores(proposals, gold, tax)}
    voter_a = [tax.expand(state["votes"]["A"]["accepted"]) for _, state in escalated]
    a_scores = labeller_scores(voter_a, gold, tax)
    report["voter_a_on_same_rows"] = {key: a_scores[key] for key in ("exact_set_accuracy", "coarse_accuracy")}
    if gate_rows:
        report["knn"] = knn_report(gate_rows, tax)
    return report


def bench_answer(components: Components, queries: Sequence[str]) -> dict[str, Any]:
    """Latency of the grounded answer on the graph's own reranked docs (one LLM call per query)."""
    _require_llm(components)
    from langgraph.checkpoint.memory import InMemorySaver

    assistant = Assistant(components, checkpointer=InMemorySaver())
    answer = GenerateAnswer(components.llm, oos_label=components.taxonomy.oos_label)
    times, kinds, cited = [], [], 0
    for query in queries:
        first = assistant.ask(query)
        if first.pending_review:
            continue
        state = dict(assistant.graph.get_state(assistant._config(first.thread_id)).values)
        start = time.perf_counter()
        out = answer(state)  # type: ignore[arg-type]
        times.append((time.perf_counter() - start) * 1000)
        kinds.append(out["answer_kind"])
        cited += out["answer_kind"] == "llm" and "answer:sources_appended" not in out.get("reasons", [])
    llm_rows = kinds.count("llm")
    return {
        "queries": len(queries),
        "answered": len(times),
        "llm_answers": llm_rows,
        "llm_answers_citing_inline": cited,
        "latency": percentiles(times) if times else {},
    }
