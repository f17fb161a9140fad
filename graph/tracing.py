"""Node runs that say what they decided: each node's own trace run carries a compact record of its decision as
metadata and the route as tags, for LangSmith and any langchain_core tracer alike.

A node's run exists before the node computes anything, so the record is added afterwards, to the run objects the
tracers hold (`run_map`, keyed by the node run's id, the `parent_run_id` of the callback manager the node receives).
LangSmith sends a run's metadata and tags again when the run ends, so what is added here reaches its payload too.
The same records are what `Assistant.stream` yields per node.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime

from graph.options import options_of
from graph.state import State, plain

PAUSED = "review:pending"
_OUR_TAGS = ("route:", "review:")
TOP_PROBS = 3  # labels per voter in classify's record: enough to see a near miss, small enough to read


def _top(probs: Mapping[str, float], n: int = TOP_PROBS) -> dict[str, float]:
    return {label: round(p, 3) for label, p in sorted(probs.items(), key=lambda kv: -kv[1])[:n]}


def _classify(u: Mapping[str, Any]) -> dict[str, Any]:
    votes = u.get("votes", {})
    return {
        "probs": {name: _top(rec["probs"]) for name, rec in votes.items()},
        "accepted": {name: rec["accepted"] for name, rec in votes.items()},
        "model_versions": {name: rec["version"] for name, rec in votes.items()},
        "query_flags": u.get("reasons", []),
    }


def _vote(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "decision": u.get("decision"),
        "labels": u.get("labels", []),
        "confidence": u.get("confidence"),
        "candidates": u.get("candidates", []),
        "reasons": u.get("reasons", []),
    }


def _extract(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "llm_labels": u.get("llm_labels", []),
        "proposal": u.get("proposal", []),
        "entities": u.get("entities", {}),
        "reasons": u.get("reasons", []),
    }


def _rules(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rule_hits": [{"rule": hit["rule"], "labels": hit["labels"]} for hit in u.get("rule_hits", [])],
        "confirmation": u.get("route"),  # confirmed | provisional | review
        "label_source": u.get("label_source"),
        "labels": u.get("labels", []),
        "candidates": u.get("candidates", []),
    }


def _review(u: Mapping[str, Any]) -> dict[str, Any]:
    review = u.get("review", {})
    return {
        "review": review.get("status"),
        "reviewer": review.get("reviewer"),
        "review_mode": review.get("mode"),
        "labels": u.get("labels", []),
        "label_source": u.get("label_source"),
    }


def _retrieve(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "filter_used": u.get("filter_used", {}),
        "widened": u.get("widened", False),
        "docs": [
            {"doc_id": doc["doc_id"], "chunk_id": doc["chunk_id"], "stage": doc["stage"]} for doc in u.get("docs", [])
        ],
    }


def _rerank(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "docs": [
            {"doc_id": doc["doc_id"], "chunk_id": doc["chunk_id"], "fused": doc["scores"].get("fused")}
            for doc in u.get("docs", [])
        ]
    }


def _answer(u: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "answer_kind": u.get("answer_kind"),
        "citations": u.get("citations", []),
        "answer_chars": len(u.get("answer", "")),
    }


SUMMARIES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "classify": _classify,
    "vote": _vote,
    "extract": _extract,
    "rules": _rules,
    "review": _review,
    "retrieve": _retrieve,
    "rerank": _rerank,
    "answer": _answer,
}


def summary(node: str, update: Mapping[str, Any] | None) -> dict[str, Any]:
    """A compact JSON record of what `node` decided, from its partial update (ids and scores, never doc texts)."""
    make = SUMMARIES.get(node)
    return make(plain(update or {})) if make is not None else {}


def pending_summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a review pause, from the interrupt's payload: what the reviewer is asked to decide."""
    record = {
        "review": "pending",
        "review_mode": payload.get("mode"),
        "candidates": [row["label"] for row in payload.get("candidates", [])],
    }
    return record | ({"review_error": payload["error"]} if payload.get("error") else {})


def route_tags(state: Mapping[str, Any]) -> list[str]:
    """`route:auto` (the voters decided), `route:escalated` (LLM + rules), `route:reviewed` (a person), plus
    `route:provisional` while an answer went out under the conservative filter; none before the vote."""
    decision = state.get("decision")
    if not decision:
        return []
    if state.get("label_source") == "human":
        main = "route:reviewed"
    elif decision == "auto":
        main = "route:auto"
    else:
        main = "route:escalated"
    return [main, *(["route:provisional"] if state.get("route") == "provisional" else [])]


def _node_runs(config: RunnableConfig) -> list[tuple[BaseTracer, Run]]:
    """The current node's run in each tracer listening to it (one object per run: tracer copies share run_map)."""
    manager = config.get("callbacks")
    run_id = getattr(manager, "parent_run_id", None)
    if run_id is None:
        return []
    found: dict[int, tuple[BaseTracer, Run]] = {}
    for handler in getattr(manager, "handlers", ()):
        if isinstance(handler, BaseTracer) and (run := handler.run_map.get(str(run_id))) is not None:
            found.setdefault(id(run), (handler, run))
    return list(found.values())


def _root(tracer: BaseTracer, run: Run) -> Run:
    while run.parent_run_id is not None and (parent := tracer.run_map.get(str(run.parent_run_id))) is not None:
        run = parent
    return run


def annotate(config: RunnableConfig, metadata: Mapping[str, Any], tags: Iterable[str]) -> None:
    """Add metadata and tags to the current node's run, and make the trace's root run carry the same route tags."""
    tags = list(tags)
    for tracer, run in _node_runs(config):
        run.extra["metadata"] = {**run.extra.get("metadata", {}), **metadata}  # a fresh dict: never a shared one
        run.tags = [*(run.tags or []), *(tag for tag in tags if tag not in (run.tags or []))]
        root = _root(tracer, run)
        if root is not run:
            root.tags = [*(t for t in root.tags or [] if not t.startswith(_OUR_TAGS)), *tags]


class Traced:
    """A node whose run carries its record (and a review pause's record); nothing is computed when no tracer listens."""

    def __init__(self, node: Callable[..., dict[str, Any]]) -> None:
        self.node = node
        params = inspect.signature(node).parameters
        self.takes_config, self.takes_options = "config" in params, "options" in params

    def __call__(self, state: State, config: RunnableConfig, runtime: Runtime[Any] | None = None) -> dict[str, Any]:
        """`runtime.context` holds the run's options (graph/options.py), passed to nodes that take `options`."""
        kwargs: dict[str, Any] = {"options": options_of(runtime, config)} if self.takes_options else {}
        try:
            update = self.node(state, config, **kwargs) if self.takes_config else self.node(state, **kwargs)
        except GraphInterrupt as paused:
            if _node_runs(config):
                payloads = [item.value for item in (paused.args[0] if paused.args else ())]
                record = pending_summary(payloads[0]) if payloads and isinstance(payloads[0], Mapping) else {}
                annotate(config, record, [*route_tags(state), PAUSED])
            raise
        if _node_runs(config):
            name = config.get("metadata", {}).get("langgraph_node", "")
            annotate(config, summary(name, update), route_tags({**state, **plain(update)}))
        return update


def traced(node: Callable[..., dict[str, Any]]) -> Traced:
    """Wrap a node for graph/builder.py: `g.add_node("vote", traced(Vote(...)))`."""
    return Traced(node)
