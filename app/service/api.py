"""The Python API chat services call: Assistant.ask / aask / stream / astream / pending_reviews / resume / aresume.

One turn's logic is written once (`Assistant._turn`, an iterator over node updates ending with the Answer); the
async methods run it on a worker thread. That is the honest design here: the nodes are synchronous CPU work (the
voters, Chroma, the sync LLM client) that LangGraph would put on worker threads under `astream` anyway, and the
SQLite checkpointer is sync-only (its async methods raise NotImplementedError).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from app.core.components import Components
from app.core.concurrency import KeyedLocks, iterate_in_thread, iterate_within
from app.core.config import Settings, load_settings
from app.core.errors import InputError, NotPendingError
from app.core.reviews import validate_resume
from app.core.textutil import clean_query
from app.core.tracing import LangSmithTracing
from graph.options import NO_OPTIONS, RunOptions, parse_options
from graph.state import plain
from graph.tracing import pending_summary, summary

Options = RunOptions | Mapping[str, Any] | None  # per-run options (graph/options.py); None: the settings

PAUSE_NODE = "review"  # the one node that pauses (interrupt) for a person


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
class NodeUpdate:
    """One node's step of a turn, as it happens: its name, the compact record of what it decided (the same record its
    trace run carries) and its partial state update. A review pause is a step of the review node."""

    node: str
    summary: dict[str, Any]
    update: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PendingReview:
    thread_id: str
    query: str
    payload: dict[str, Any]


def _answer(thread_id: str, values: dict[str, Any], interrupts: list[Any], path: list[str]) -> Answer:
    pending = bool(interrupts)
    docs = [
        {
            "doc_id": d["doc_id"],
            "chunk_id": d["chunk_id"],
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
        from app.core.checkpoints import make_checkpointer
        from graph.builder import build_graph

        self.components = components
        self._owns_checkpointer = checkpointer is None
        self.checkpointer = make_checkpointer(components.settings) if checkpointer is None else checkpointer
        self.graph = build_graph(components, checkpointer=self.checkpointer)
        self._threads = KeyedLocks()  # one turn at a time per thread id; any number of threads at once
        self.tracing = LangSmithTracing(components.settings.trace_pause)  # on by the standard LANGSMITH_* variables

    def close(self) -> None:
        """Send what tracing still holds (briefly), and close the checkpointer's connection or pool if this Assistant
        opened it (a passed-in one stays open)."""
        from app.core.checkpoints import close_checkpointer

        self.tracing.flush(timeout=2.0)
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

    def _turn(
        self, thread_id: str, graph_input: Any, kind: str, who: dict[str, str], options: RunOptions = NO_OPTIONS
    ) -> Iterator[NodeUpdate | Answer]:
        """One turn, as it happens: each node's update, then the Answer. The only run loop; every method uses it.
        Turns on one thread id wait for each other (a second one must see the first one's checkpoint). Its root
        trace run is "labelgate", tagged with the kind of turn, with the thread and the caller in its metadata."""
        callbacks, scope = self.tracing.turn()
        config = self._config(thread_id) | {"tags": [f"turn:{kind}"], "metadata": {"thread_id": thread_id, **who}}
        if callbacks:
            config["callbacks"] = callbacks
        with self._threads.hold(thread_id):
            before = self.graph.get_state(self._config(thread_id))
            pending = bool(before.interrupts)
            if graph_input is None and (pending or not before.tasks):
                raise NotPendingError(f"thread {thread_id} has no unfinished run")
            if isinstance(graph_input, Command) and not pending:
                raise NotPendingError(f"thread {thread_id} has no pending review")
            if not isinstance(graph_input, Command) and pending:
                raise InputError(f"thread {thread_id} is waiting for a review: resolve it before asking again")
            path: list[str] = []
            for chunk in iterate_within(
                scope, lambda: self.graph.stream(graph_input, config, context=options, stream_mode="updates")
            ):
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        payload = update[0].value if update and isinstance(update[0].value, dict) else {}
                        step = NodeUpdate(PAUSE_NODE, pending_summary(payload))
                    elif node.startswith("__"):
                        continue
                    else:
                        step = NodeUpdate(node, summary(node, update), plain(update or {}))
                    path.append(step.node)
                    yield step
            snapshot = self.graph.get_state(self._config(thread_id))
        yield _answer(thread_id, dict(snapshot.values), list(snapshot.interrupts), path)

    @staticmethod
    def _last(steps: Iterator[NodeUpdate | Answer]) -> Answer:
        *_, answer = steps
        if not isinstance(answer, Answer):
            raise TypeError(f"a turn ends with its Answer, not {answer!r}")
        return answer

    def _ask_turn(
        self, query: str, thread_id: str | None, user: str | None, options: Options
    ) -> Iterator[NodeUpdate | Answer]:
        clean_query(query, self.components.settings.max_query_chars)  # raise InputError before any work
        run_options = parse_options(options)
        thread_id = thread_id or uuid.uuid4().hex
        who = {"user": user} if user else {}
        return self._turn(thread_id, {"query": query} | who, "ask", who, run_options)

    def _resume_turn(
        self, thread_id: str, labels: list[str], reviewer: str, options: Options
    ) -> Iterator[NodeUpdate | Answer]:
        validate_resume({"labels": labels, "reviewer": reviewer}, self.components.taxonomy)
        run_options = parse_options(options)
        resume: Command[Any] = Command(resume={"labels": labels, "reviewer": reviewer})
        return self._turn(thread_id, resume, "resume", {"reviewer": reviewer}, run_options)

    def ask(
        self, query: str, thread_id: str | None = None, *, user: str | None = None, options: Options = None
    ) -> Answer:
        """Run one query through the graph; returns the answer, or a pending review (answer empty). `options` vary
        this run only (graph/options.py: top_k, vote margins, rerank weights, review mode, llm on/off)."""
        return self._last(self._ask_turn(query, thread_id, user, options))

    def stream(
        self, query: str, thread_id: str | None = None, *, user: str | None = None, options: Options = None
    ) -> Iterator[NodeUpdate | Answer]:
        """ask, step by step: a NodeUpdate per node as it finishes, then the Answer. A bad query raises here, a thread
        waiting for a review at the first step; a stream closed early stops its turn after the current node."""
        return self._ask_turn(query, thread_id, user, options)

    async def aask(
        self, query: str, thread_id: str | None = None, *, user: str | None = None, options: Options = None
    ) -> Answer:
        """ask from asyncio: the turn runs on a worker thread, the event loop stays free. Cancelling the caller does
        not cancel the turn: it finishes and is saved on its thread."""
        return await asyncio.to_thread(self.ask, query, thread_id, user=user, options=options)

    async def astream(
        self, query: str, thread_id: str | None = None, *, user: str | None = None, options: Options = None
    ) -> AsyncIterator[NodeUpdate | Answer]:
        """stream from asyncio: NodeUpdates as the nodes finish on a worker thread, then the Answer."""
        steps = self._ask_turn(query, thread_id, user, options)  # a bad query raises before the first step
        async for step in iterate_in_thread(lambda: steps):
            yield step

    def _thread_ids(self) -> list[str]:
        """Every thread the checkpointer holds, oldest first."""
        seen: dict[str, None] = {}
        for checkpoint in self.checkpointer.list(None):
            seen.setdefault(checkpoint.config["configurable"]["thread_id"], None)
        return list(reversed(list(seen)))

    def pending_reviews(self) -> list[PendingReview]:
        """Threads paused at review, oldest first (read from the checkpointer; survives restarts)."""
        pending = []
        for thread_id in self._thread_ids():
            snapshot = self.graph.get_state(self._config(thread_id))
            if snapshot.interrupts:
                pending.append(PendingReview(thread_id, snapshot.values.get("query", ""), snapshot.interrupts[0].value))
        return pending

    def resume(self, thread_id: str, labels: list[str], reviewer: str, *, options: Options = None) -> Answer:
        """Confirm labels for a paused thread (validated against the taxonomy) and finish its run (`options`: the
        resumed run's, as for ask; a run's options are not kept across the pause)."""
        return self._last(self._resume_turn(thread_id, labels, reviewer, options))

    def unfinished_runs(self) -> list[str]:
        """Threads whose run stopped between nodes without a review pause: the process died mid-turn (e.g. killed
        after a review was resolved, before its answer). `finish` carries each on from its last checkpoint."""
        unfinished = []
        for thread_id in self._thread_ids():
            snapshot = self.graph.get_state(self._config(thread_id))
            # `tasks`, not `next`: a task whose writes were saved before the crash is no longer in `next`, although
            # the step it belongs to never completed (its checkpoint was not written)
            if snapshot.tasks and not snapshot.interrupts:
                unfinished.append(thread_id)
        return unfinished

    def finish(self, thread_id: str) -> Answer:
        """Run an unfinished thread's remaining nodes from its last checkpoint (nodes already done are not rerun)."""
        return self._last(self._turn(thread_id, None, "finish", {}))

    async def aresume(self, thread_id: str, labels: list[str], reviewer: str, *, options: Options = None) -> Answer:
        """resume from asyncio (on a worker thread, like aask)."""
        return await asyncio.to_thread(self.resume, thread_id, labels, reviewer, options=options)
