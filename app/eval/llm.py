"""`labelgate bench extract|answer`: the escalation path's LLM on this machine — extraction accuracy where the voters
escalate, and latency of extraction and of grounded answers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.api import Assistant
from app.components import Components
from app.data import Example
from app.eval.latency import percentiles
from app.metrics import exact_match, macro_f1
from nodes.answer import Answer
from nodes.classify import Classify
from nodes.extract import Extract
from nodes.vote import Vote


def _require_llm(components: Components) -> None:
    from app.llm_local import LLMServerError

    if components.llm is None:
        raise LLMServerError("no LLM: set LABELGATE_LLM_BASE_URL or run `labelgate models build` for the local one")


def bench_extract(components: Components, rows: Sequence[Example], *, limit: int | None = None) -> dict[str, Any]:
    """Run the gate on every row; on the escalated ones compare the LLM's labels (and voter A's) with gold."""
    _require_llm(components)
    tax, s = components.taxonomy, components.settings
    classify, vote = Classify(components.voters, max_query_chars=s.max_query_chars), Vote(tax, s.vote)
    extract = Extract(components.llm, tax)
    escalated = []
    for row in rows:
        state: dict[str, Any] = {"query": row.text}
        state |= classify(state)  # type: ignore[arg-type]
        state |= vote(state)  # type: ignore[arg-type]
        if state["decision"] != "auto":
            escalated.append((row, state))
    escalated = escalated[:limit] if limit else escalated
    gold, pred, voter_a, times, fallbacks, dropped = [], [], [], [], 0, 0
    for row, state in escalated:
        start = time.perf_counter()
        out = extract(state)  # type: ignore[arg-type]
        times.append((time.perf_counter() - start) * 1000)
        fallbacks += any(r.startswith("extract_skipped") for r in out["reasons"])
        dropped += sum(int(r.rsplit(":", 1)[1]) for r in out["reasons"] if r.startswith("llm_dropped_unknown:"))
        gold.append(tax.expand(row.labels))
        pred.append(out["llm_labels"])
        voter_a.append(tax.expand(state["votes"]["A"]["accepted"]))
    coarse = [[x for x in labels if x in tax.coarse_ids] for labels in (*gold, *pred, *voter_a)]
    n = len(gold)
    return {
        "rows": len(rows),
        "escalated": n,
        "llm": {
            "exact_set_accuracy": round(exact_match(pred, gold), 4),
            "coarse_accuracy": round(exact_match(coarse[n : 2 * n], coarse[:n]), 4),
            "macro_f1": round(macro_f1(pred, gold, tax.ids), 4),
            "fallbacks": fallbacks,
            "dropped_unknown_labels": dropped,
            "latency": percentiles(times) if times else {},
        },
        "voter_a_on_same_rows": {
            "exact_set_accuracy": round(exact_match(voter_a, gold), 4),
            "coarse_accuracy": round(exact_match(coarse[2 * n :], coarse[:n]), 4),
        },
    }


def bench_answer(components: Components, queries: Sequence[str]) -> dict[str, Any]:
    """Latency of the grounded answer on the graph's own reranked docs (one LLM call per query)."""
    _require_llm(components)
    from langgraph.checkpoint.memory import InMemorySaver

    assistant = Assistant(components, checkpointer=InMemorySaver())
    answer = Answer(components.llm, oos_label=components.taxonomy.oos_label)
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
