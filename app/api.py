"""The Python API chat services call: Assistant.ask / pending_reviews / resume."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from app.components import Components
from app.config import Settings, load_settings
from app.errors import InputError, NotPendingError
from app.reviews import validate_resume
from app.textutil import clean_query


@dataclass(frozen=True)
class Answer:
    """One turn's outcome. While a review is pending `review` holds the reviewer's payload, and `answer` is empty
    (review before the answer) or already given under a conservative coarse filter (review after the answer)."""

    thread_id: str
    query: str
    answer: str
    citations: list[str]
    labels: list[str]
    label_source: str
    decision: str
    route: str
    reasons: list[str]
    pending_review: bool
    docs: list[dict[str, Any]] = field(default_factory=list)
    review: dict[str, Any] = field(default_factory=dict)
    votes: dict[str, Any] = field(default_factory=dict)
    filter_used: dict[str, Any] = field(default_factory=dict)
    widened: bool = False
    path: list[str] = field(default_factory=list)  # the nodes this call ran, in order ("review" last while paused)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The fields a caller shows for a turn (no per-doc details)."""
        keys = ("thread_id", "query", "answer", "labels", "label_source", "decision", "route", "path", "reasons")
        return {key: getattr(self, key) for key in keys} | {
            "pending_review": self.pending_review,
            "citations": self.citations,
        }


@dataclass(frozen=True)
class PendingReview:
    thread_id: str
    query: str
    payload: dict[str, Any]


def _answer(thread_id: str, values: dict[str, Any], interrupts: list[Any], path: list[str]) -> Answer:
    pending = bool(interrupts)
    docs = [
        {
            "id": d["doc_id"],
            "chunk": d["id"],
            "score": d["scores"].get("fused", d["scores"]["semantic"]),
            "title": d["title"],
            "text": d["text"],
            "labels": d["labels"],
            "stage": d["stage"],
            "scores": d["scores"],
        }
        for d in values.get("docs", [])
    ]
    return Answer(
        thread_id=thread_id,
        query=values.get("query", ""),
        answer=values.get("answer", ""),
        citations=values.get("citations", []),
        labels=values.get("labels", []),
        label_source=values.get("label_source", ""),
        decision=values.get("decision", ""),
        route=values.get("route", ""),
        reasons=values.get("reasons", []),
        pending_review=pending,
        docs=docs,
        review=interrupts[0].value if pending else values.get("review", {}),
        votes=values.get("votes", {}),
        filter_used=values.get("filter_used", {}),
        widened=bool(values.get("widened", False)),
        path=path + (["review"] if pending and path[-1:] != ["review"] else []),
    )


class Assistant:
    """One compiled graph shared by many threads; models are loaded once, when the Assistant is built. The
    checkpointer is the settings' (SQLite file or Postgres) unless one is passed; `close()` (or `with`) releases it."""

    def __init__(self, components: Components, *, checkpointer: BaseCheckpointSaver[Any] | None = None) -> None:
        from app.checkpoints import make_checkpointer
        from graph.builder import build_graph

        self.components = components
        self._owns_checkpointer = checkpointer is None
        self.checkpointer = make_checkpointer(components.settings) if checkpointer is None else checkpointer
        self.graph = build_graph(components, checkpointer=self.checkpointer)

    def close(self) -> None:
        """Close the checkpointer's connection or pool if this Assistant opened it (a passed-in one stays open)."""
        from app.checkpoints import close_checkpointer

        if self._owns_checkpointer:
            self._owns_checkpointer = False
            close_checkpointer(self.checkpointer)

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Assistant:
        return cls(Components.load(settings or load_settings()))

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}, "run_name": "labelgate"}

    def _run(self, graph_input: Any, thread_id: str) -> Answer:
        """Run the graph to its end or to a review pause; records which nodes ran."""
        config = self._config(thread_id)
        path = [node for update in self.graph.stream(graph_input, config, stream_mode="updates") for node in update]
        snapshot = self.graph.get_state(config)
        return _answer(thread_id, dict(snapshot.values), list(snapshot.interrupts), [n for n in path if n[:2] != "__"])

    def ask(self, query: str, thread_id: str | None = None, *, user: str | None = None) -> Answer:
        """Run one query through the graph; returns the answer, or a pending review (answer empty)."""
        clean_query(query, self.components.settings.max_query_chars)  # raise InputError before any work
        thread_id = thread_id or uuid.uuid4().hex
        if self.graph.get_state(self._config(thread_id)).interrupts:
            raise InputError(f"thread {thread_id} is waiting for a review: resolve it before asking again")
        payload: dict[str, Any] = {"query": query} | ({"user": user} if user else {})
        return self._run(payload, thread_id)

    def pending_reviews(self) -> list[PendingReview]:
        """Threads paused at review, oldest first (read from the checkpointer; survives restarts)."""
        seen: dict[str, None] = {}
        for checkpoint in self.checkpointer.list(None):
            seen.setdefault(checkpoint.config["configurable"]["thread_id"], None)
        pending = []
        for thread_id in reversed(list(seen)):
            snapshot = self.graph.get_state(self._config(thread_id))
            if snapshot.interrupts:
                pending.append(PendingReview(thread_id, snapshot.values.get("query", ""), snapshot.interrupts[0].value))
        return pending

    def resume(self, thread_id: str, labels: list[str], reviewer: str) -> Answer:
        """Confirm labels for a paused thread (validated against the taxonomy) and finish its run."""
        validate_resume({"labels": labels, "reviewer": reviewer}, self.components.taxonomy)
        if not self.graph.get_state(self._config(thread_id)).interrupts:
            raise NotPendingError(f"thread {thread_id} has no pending review")
        return self._run(Command(resume={"labels": labels, "reviewer": reviewer}), thread_id)
