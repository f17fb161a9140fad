"""Records every graph run in the decision log, whichever way the graph runs (Assistant, `langgraph dev`, Studio).

A LangChain callback handler bound to the compiled graph sees the root run start and end: its end carries the final
state (for invoke, stream in any mode, and a run paused by interrupt() alike); a node ending in GraphInterrupt marks
the run as paused for review. Handler work is a few dict operations; the write happens on the store's thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphInterrupt
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from app.core.decisionlog import DecisionLog
from app.core.taxonomy import Taxonomy

if TYPE_CHECKING:
    from app.core.components import Components

log = logging.getLogger(__name__)
Graph = CompiledStateGraph[Any, Any, Any, Any]  # the compiled labelgate graph, whatever its schemas
DISAGREE = frozenset({"coarse_disagree", "fine_disagree"})


@dataclass
class _Run:
    created: float
    started: float
    thread_id: str
    kind: str
    user: str | None
    query: str  # the input query of an ask (the log's query when the run fails before the state has one)
    node_started: dict[UUID, tuple[str, float]] = field(default_factory=dict)
    node_ms: dict[str, float] = field(default_factory=dict)
    interrupts: list[Any] = field(default_factory=list)


def decision_row(
    values: dict[str, Any],
    *,
    taxonomy: Taxonomy,
    query_chars: int,
    llm_model: str | None = None,
    interrupts: list[Any] | None = None,
) -> dict[str, Any]:
    """The log fields that come from a run's final state (the rest — time, thread, latency — from the run)."""
    query = str(values.get("query") or "")
    labels = [str(x) for x in values.get("labels") or []]
    reasons = [str(x) for x in values.get("reasons") or []]
    votes: dict[str, dict[str, Any]] = {
        name: {
            "top": max(rec["probs"], key=rec["probs"].get) if rec.get("probs") else None,
            "p": round(max(rec["probs"].values()), 4) if rec.get("probs") else None,
            "accepted": [str(x) for x in rec.get("accepted", [])],
        }
        for name, rec in sorted((values.get("votes") or {}).items())
    }
    versions = {name: str(rec.get("version", "")) for name, rec in sorted((values.get("votes") or {}).items())}
    if llm_model:
        versions["llm"] = llm_model
    pending = bool(interrupts)
    payload = interrupts[0].value if pending and isinstance(interrupts[0].value, dict) else {}  # type: ignore[index]
    review = values.get("review") or {}
    filter_used = values.get("filter_used") or {}
    known = [label for label in labels if label in taxonomy]
    accepted = {frozenset(taxonomy.expand(taxonomy.split_known(rec["accepted"])[0])) for rec in votes.values()}
    return {
        "query": query[:query_chars],
        "query_chars": len(query),
        "labels": labels,
        "leaf_labels": taxonomy.fine_only(known) + [label for label in labels if label not in taxonomy],
        "label_source": str(values.get("label_source") or ""),
        "decision": str(values.get("decision") or ""),
        "route": str(values.get("route") or ""),
        "reasons": reasons,
        "confidence": values.get("confidence"),
        "votes": votes,
        "disagree": len(accepted) > 1 or bool(DISAGREE & set(reasons)),  # accepted sets differ (one may be empty)
        "pending_review": pending,
        "review_mode": payload.get("mode") if pending else review.get("mode"),
        "reviewer": None if pending else review.get("reviewer"),
        "filter_stage": filter_used.get("widened_to") or filter_used.get("stage"),
        "widened": bool(values.get("widened", False)),
        "answer_kind": str(values.get("answer_kind") or ""),
        "doc_ids": list(dict.fromkeys(str(d.get("doc_id", "")) for d in values.get("docs") or [])),
        "model_versions": versions,
    }


class DecisionRecorder(BaseCallbackHandler):
    """One decision-log row per root run of the graph it is bound to (see `record_decisions`)."""

    run_inline = True  # cheap and thread-safe: no executor hop in async runs (the LangGraph server)

    def __init__(
        self, store: DecisionLog, taxonomy: Taxonomy, *, query_chars: int, llm_model: str | None = None
    ) -> None:
        self.store = store
        self.taxonomy = taxonomy
        self.query_chars = query_chars
        self.llm_model = llm_model
        self._runs: dict[UUID, _Run] = {}  # root runs in flight
        self._root_of: dict[UUID, UUID] = {}  # every chain run in flight → its root

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        root = self._root_of.get(parent_run_id) if parent_run_id is not None else None
        if root is None:  # a run of the graph itself (its parent, if any, is not ours)
            given = inputs if isinstance(inputs, dict) else {}
            user = given.get("user")
            self._runs[run_id] = _Run(
                created=time.time(),
                started=time.perf_counter(),
                thread_id=str((metadata or {}).get("thread_id", "")),
                kind="resume" if isinstance(inputs, Command) else "ask",
                user=str(user) if user else None,
                query=str(given.get("query") or ""),
            )
            self._root_of[run_id] = run_id
            return
        self._root_of[run_id] = root
        run = self._runs.get(root)
        node = (metadata or {}).get("langgraph_node")
        if run is not None and parent_run_id == root and node:
            run.node_started[run_id] = (str(node), time.perf_counter())

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._child_done(run_id)
        run = self._runs.pop(run_id, None)
        if run is not None:
            self._finish(run_id, run, outputs if isinstance(outputs, dict) else {}, None)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        root = self._root_of.get(run_id)
        self._child_done(run_id)
        run = self._runs.pop(run_id, None)
        if run is not None:  # the graph itself failed (or its caller stopped consuming it)
            self._finish(run_id, run, {}, f"{type(error).__name__}: {error}"[:1000])
        elif isinstance(error, GraphInterrupt) and root is not None and root in self._runs:
            self._runs[root].interrupts.extend(error.args[0] if error.args else [])

    def _child_done(self, run_id: UUID) -> None:
        root = self._root_of.pop(run_id, None)
        run = self._runs.get(root) if root is not None and root != run_id else None
        if run is not None and run_id in run.node_started:
            node, started = run.node_started.pop(run_id)
            run.node_ms[node] = round(run.node_ms.get(node, 0.0) + (time.perf_counter() - started) * 1000, 3)

    def _finish(self, run_id: UUID, run: _Run, values: dict[str, Any], error: str | None) -> None:
        latency_ms = (time.perf_counter() - run.started) * 1000
        try:
            row = decision_row(
                {"query": run.query} | values,
                taxonomy=self.taxonomy,
                query_chars=self.query_chars,
                llm_model=self.llm_model,
                interrupts=run.interrupts,
            )
            row |= {
                "created": run.created,
                "run_id": str(run_id),
                "thread_id": run.thread_id,
                "kind": run.kind,
                "user": run.user,
                "latency_ms": round(latency_ms, 3),
                "node_ms": run.node_ms,
                "error": error,
            }
            self.store.record(row)
        except Exception as exc:  # never let the log break a query
            log.warning("decision log: could not record run %s: %s", run_id, exc)


def llm_version(c: Components) -> str | None:
    """What answers and extracts: the bundled GGUF's name for the local server, else the configured model."""
    if c.llm is None:
        return None
    if c.settings.llm_base_url is None:
        from app.core.llm_local import GGUF_NAME

        return GGUF_NAME.removesuffix(".gguf")
    return c.settings.llm_model


def record_decisions(graph: Graph, c: Components) -> Graph:
    """The same graph with a recorder bound to every run of it (still a Pregel graph: the LangGraph server copies it
    with its own checkpointer and keeps the callbacks); unchanged when the decision log is off."""
    if c.decisions is None:
        return graph
    recorder = DecisionRecorder(
        c.decisions, c.taxonomy, query_chars=c.settings.monitor.query_chars, llm_model=llm_version(c)
    )
    return graph.with_config(callbacks=[recorder])
