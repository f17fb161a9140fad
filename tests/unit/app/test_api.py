"""The Python API over the real graph with voter doubles, a tiny encoder and ephemeral Chroma; the pause/resume
round trip and the feedback store's idempotent recording on each checkpoint backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from app.api import Assistant
from app.errors import InputError, ReviewError


@pytest.fixture()
def stored(components, store_settings) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The test components on one checkpoint/feedback backend: SQLite files in home, or LABELGATE_DATABASE_URL."""
    from app.feedback import FeedbackStore

    store = FeedbackStore(store_settings.feedback_db_url)
    yield dataclasses.replace(components, settings=store_settings, feedback=store)
    store.close()


def test_a_review_pause_survives_a_restart_on_each_backend(stored) -> None:  # type: ignore[no-untyped-def]
    """Pause, close the Assistant (its SQLite connection or Postgres pool), build a new one from the same settings
    (what a new process does): it lists the pending review and resumes it; the confirmation lands in the feedback
    store the settings chose."""
    with Assistant(stored) as first:
        paused = first.ask("修好的进度怎么样了")
        assert paused.pending_review
    with Assistant(stored) as second:
        [pending] = second.pending_reviews()
        assert (pending.thread_id, pending.query) == (paused.thread_id, "修好的进度怎么样了")
        assert pending.payload["mode"] == "after_answer"
        done = second.resume(paused.thread_id, labels=["维修进度"], reviewer="carol")
        assert done.label_source == "human" and done.labels == ["售后", "维修进度"] and not done.pending_review
        assert second.pending_reviews() == []
    [row] = stored.feedback.rows()
    assert (row.thread_id, row.labels, row.reviewer) == (paused.thread_id, ["售后", "维修进度"], "carol")
    on_postgres = stored.settings.database_url is not None
    assert stored.feedback.engine.dialect.name == ("postgresql" if on_postgres else "sqlite")
    assert stored.settings.checkpoint_db.exists() is not on_postgres  # Postgres: no SQLite file was made


def test_auto_path_filters_to_after_sales(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    answer = assistant.ask("我的手机屏幕裂了，保修可以换吗？")
    assert answer.decision == "auto"
    assert answer.label_source == "voters"
    assert {"屏幕", "保修政策", "售后"} <= set(answer.labels)
    assert {doc["id"] for doc in answer.docs} == {"D1", "D2", "D3"}
    assert answer.answer.startswith("（以下为知识库原文摘录")
    assert set(answer.citations) == {"D1", "D2", "D3"}
    assert "answer:passages_llm_not_configured" in answer.reasons
    assert not answer.pending_review
    assert answer.path == ["classify", "vote", "retrieve", "rerank", "answer"]


def test_after_answer_review_answers_now_and_confirms_later(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    answer = assistant.ask("修好的进度怎么样了")  # only voter B knows 维修进度 → disagreement; 售后 reviews after
    assert answer.decision == "escalate"
    assert "extract_skipped:llm_not_configured" in answer.reasons and "review:after_answer" in answer.reasons
    assert answer.pending_review and answer.review["mode"] == "after_answer"
    assert answer.label_source == "provisional" and answer.labels == ["售后"]  # the conservative coarse filter
    assert answer.answer and all("售后" in doc["labels"] for doc in answer.docs)
    assert answer.path == ["classify", "vote", "extract", "rules", "retrieve", "rerank", "answer", "review"]
    assert [p.thread_id for p in assistant.pending_reviews()] == [answer.thread_id]
    with pytest.raises(ReviewError):
        assistant.resume(answer.thread_id, labels=["不存在"], reviewer="alice")
    with pytest.raises(ReviewError):
        assistant.resume(answer.thread_id, labels=["维修进度"], reviewer="  ")
    done = assistant.resume(answer.thread_id, labels=["维修进度"], reviewer="alice")
    assert done.label_source == "human" and done.labels == ["售后", "维修进度"]
    assert done.review["reviewer"] == "alice" and done.review["mode"] == "after_answer"
    assert done.path == ["review"] and done.answer == answer.answer and not done.pending_review
    assert assistant.pending_reviews() == []
    [row] = components.feedback.rows()
    assert (row.query, row.labels, row.source, row.reviewer) == (
        "修好的进度怎么样了",
        ["售后", "维修进度"],
        "human",
        "alice",
    )
    assert row.thread_id == answer.thread_id and row.model_versions == {"A": "test-1", "B": "test-1"}


def test_before_answer_review_blocks_the_answer(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    answer = assistant.ask("你们宣传的和实际不一样")  # 投诉 candidates review before answering
    assert answer.pending_review and answer.answer == "" and answer.review["mode"] == "before_answer"
    assert answer.path == ["classify", "vote", "extract", "rules", "review"]
    done = assistant.resume(answer.thread_id, labels=["虚假宣传"], reviewer="bob")
    assert done.path == ["review", "retrieve", "rerank", "answer"] and done.answer
    assert done.labels == ["投诉", "虚假宣传"] and done.review["mode"] == "before_answer"


def test_bad_queries_are_refused(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    for bad in ("", "   ", "\x00\x01"):
        with pytest.raises(InputError):
            assistant.ask(bad)
    with pytest.raises(ReviewError):
        assistant.resume("no-such-thread", labels=["屏幕"], reviewer="bob")


def test_a_crash_after_recording_feedback_does_not_double_it(stored) -> None:  # type: ignore[no-untyped-def]
    """The review task records feedback, then dies before its writes reach the checkpoint (as a process killed at that
    moment would): the thread is still pending, the next resume replays the task, and the store keeps one row — on
    each backend."""
    from app.feedback import FeedbackStore

    class DiesAfterInsert(FeedbackStore):
        died = False

        def add(self, **kwargs):  # type: ignore[no-untyped-def]
            row_id = super().add(**kwargs)
            if not self.died:
                self.died = True
                raise RuntimeError("simulated crash right after the feedback insert")
            return row_id

    store = DiesAfterInsert(stored.settings.feedback_db_url)
    assistant = Assistant(dataclasses.replace(stored, feedback=store))
    paused = assistant.ask("你们宣传的和实际不一样")
    with pytest.raises(RuntimeError, match="simulated crash"):
        assistant.resume(paused.thread_id, labels=["虚假宣传"], reviewer="bob")
    assert len(store.rows()) == 1  # recorded before the crash
    assert [p.thread_id for p in assistant.pending_reviews()] == [paused.thread_id]  # still pending, listed once
    done = assistant.resume(paused.thread_id, labels=["虚假宣传"], reviewer="bob")
    assert done.labels == ["投诉", "虚假宣传"] and not done.pending_review
    [row] = store.rows()
    assert row.event and row.event.startswith(f"{paused.thread_id}:review:") and row.reviewer == "bob"
    assistant.ask("你们宣传的和实际不一样", thread_id=paused.thread_id)  # a new turn on the thread is a new event
    assistant.resume(paused.thread_id, labels=["虚假宣传"], reviewer="bob")
    assert len(store.rows()) == 2
    assistant.close()
    store.close()
