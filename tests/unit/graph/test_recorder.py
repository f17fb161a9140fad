"""Real graph runs (keyword voters, tiny encoder, no LLM) land in the decision log, whichever way the graph is run."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.decisionlog import DecisionLog
from app.service.api import Assistant


@pytest.fixture()
def logged(components) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    store = DecisionLog(components.settings.decision_log_db_url)
    yield dataclasses.replace(components, decisions=store)
    store.close()


def _rows(store: DecisionLog) -> list[Any]:
    assert store.flush()
    return store.rows(since=0, until=1e12)


def test_asks_and_resumes_are_logged_with_their_outcome(logged) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(logged)
    auto = assistant.ask("我的手机屏幕裂了，保修可以换吗？", user="u-1")
    later = assistant.ask("修好的进度怎么样了")  # after_answer review: answered now, paused afterwards
    blocked = assistant.ask("你们宣传的和实际不一样")  # before_answer review: paused before the answer
    assistant.resume(later.thread_id, labels=["维修进度"], reviewer="alice")
    assistant.resume(blocked.thread_id, labels=["虚假宣传"], reviewer="bob")

    rows = _rows(logged.decisions)
    assert [(r.thread_id, r.kind) for r in rows] == [
        (auto.thread_id, "ask"),
        (later.thread_id, "ask"),
        (blocked.thread_id, "ask"),
        (later.thread_id, "resume"),
        (blocked.thread_id, "resume"),
    ]
    first, provisional, paused, resumed_after, resumed_before = rows
    assert (first.decision, first.route, first.label_source, first.pending_review) == ("auto", "auto", "voters", False)
    assert set(first.labels) == {"售后", "屏幕", "保修政策"} and sorted(first.leaf_labels) == ["保修政策", "屏幕"]
    assert first.user == "u-1" and first.query == auto.query and first.query_chars == len(auto.query)
    assert first.doc_ids == [d["doc_id"] for d in auto.docs] and first.filter_stage == "fine" and not first.widened
    assert first.model_versions == {"A": "test-1", "B": "test-1"} and first.error is None
    assert list(first.node_ms) == auto.path and all(ms > 0 for ms in first.node_ms.values())
    assert first.latency_ms >= sum(first.node_ms.values()) > 0
    assert first.votes["A"]["top"] in first.labels and 0.9 < first.votes["A"]["p"] <= 1
    assert first.confidence == pytest.approx(0.982, abs=0.001) and not first.disagree

    assert provisional.decision == "escalate" and provisional.route == "provisional" and provisional.disagree
    assert provisional.pending_review and provisional.review_mode == "after_answer" and provisional.reviewer is None
    assert provisional.leaf_labels == ["售后"]  # the conservative coarse filter, coarse-only meaning
    assert list(provisional.node_ms)[-1] == "review" and provisional.answer_kind == "passages"
    assert paused.pending_review and paused.review_mode == "before_answer" and paused.labels == []
    assert "review:before_answer" in paused.reasons and paused.doc_ids == []

    assert (resumed_after.route, resumed_after.label_source, resumed_after.reviewer) == ("reviewed", "human", "alice")
    assert resumed_after.leaf_labels == ["维修进度"] and not resumed_after.pending_review
    assert resumed_after.review_mode == "after_answer" and list(resumed_after.node_ms) == ["review"]
    assert resumed_before.reviewer == "bob" and resumed_before.review_mode == "before_answer"
    assert list(resumed_before.node_ms) == ["review", "retrieve", "rerank", "answer"] and resumed_before.doc_ids
    assert len({r.run_id for r in rows}) == 5


def test_direct_invoke_and_async_stream_are_logged_too(logged) -> None:  # type: ignore[no-untyped-def]
    """The LangGraph server copies the factory's graph with its own checkpointer and runs it with astream."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from graph.builder import build_graph

    graph = build_graph(logged).copy(update={"checkpointer": InMemorySaver()})  # as langgraph_api does
    graph.invoke({"query": "电池不耐用"}, {"configurable": {"thread_id": "direct"}})

    async def server_like() -> None:
        config: Any = {"configurable": {"thread_id": "async"}}
        async for _ in graph.astream({"query": "你们宣传的和实际不一样"}, config, stream_mode=["values", "updates"]):
            pass
        resume = Command(resume={"labels": ["不存在"], "reviewer": "eve"})  # invalid: pauses again with the error
        async for _ in graph.astream(resume, config, stream_mode="updates"):
            pass

    asyncio.run(server_like())
    rows = _rows(logged.decisions)
    assert [(r.thread_id, r.kind, r.pending_review) for r in rows] == [
        ("direct", "ask", False),
        ("async", "ask", True),
        ("async", "resume", True),
    ]
    assert rows[0].decision == "auto" and rows[0].leaf_labels == ["电池"]
    assert rows[2].route == "review" and rows[2].reviewer is None


def test_a_failing_run_is_logged_with_its_error(logged) -> None:  # type: ignore[no-untyped-def]
    class Broken:  # not a KnowledgeBaseError: retrieve does not catch it, the run fails
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"kb exploded on {name}")

    assistant = Assistant(dataclasses.replace(logged, kb=Broken()))
    with pytest.raises(RuntimeError, match="kb exploded"):
        assistant.ask("电池不耐用", thread_id="boom")
    [row] = _rows(logged.decisions)
    assert row.thread_id == "boom" and row.query == "电池不耐用" and row.error.startswith("RuntimeError: kb exploded")


def test_a_broken_store_never_breaks_a_query(logged, caplog) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    store = logged.decisions
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE decisions"))
    assistant = Assistant(logged)
    with caplog.at_level(logging.WARNING, logger="app.core.decisionlog"):
        answer = assistant.ask("电池不耐用")
        assert store.flush()
    assert answer.decision == "auto" and answer.answer
    assert store.dropped == 1 and "not written" in caplog.text


def test_the_log_can_be_switched_off(components, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import load_settings

    monkeypatch.setenv("LABELGATE_DECISION_LOG", "false")
    monkeypatch.setenv("LABELGATE_DECISION_LOG_URL", " ")
    off = load_settings()
    assert off.decision_log is False and off.decision_log_db_url.endswith("decisions.sqlite")
    assert not (Assistant(components).graph.config or {}).get("callbacks")  # no log in components: no recorder


def test_the_log_bench_measures_the_recorder_and_the_writer_in_a_scratch_log(logged) -> None:  # type: ignore[no-untyped-def]
    """`labelgate bench log` (the CPU figures and their targets live there, not in unit tests): every ask is logged
    into its own scratch log, never into the components' one, and both figures are measured."""
    from app.ops.eval.latency import RECORDER_TARGET_MS, WRITER_TARGET_MS, bench_decision_log

    queries = ["我的手机屏幕裂了，保修可以换吗？", "电池不耐用", "你们宣传的和实际不一样", "以旧换新怎么算"] * 2
    report = bench_decision_log(logged, queries, rows=20)
    assert (report["queries"], report["logged"], report["rows_written"]) == (8, 8, 8 + 20)
    assert report["recorder_cpu_ms_per_ask"] > 0 and report["writer_cpu_ms_per_row"] > 0
    assert (report["recorder_target_ms"], report["writer_target_ms"]) == (RECORDER_TARGET_MS, WRITER_TARGET_MS)
    assert isinstance(report["ok"], bool) and _rows(logged.decisions) == []  # the components' own log is untouched
