"""The Python API over the real graph with voter doubles, a tiny encoder and ephemeral Chroma; the pause/resume
round trip and the feedback store's idempotent recording on each checkpoint backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from app.core.errors import InputError, ReviewError
from app.service.api import Assistant


@pytest.fixture()
def stored(components, store_settings) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The test components on one checkpoint/feedback backend: SQLite files in home, or LABELGATE_DATABASE_URL."""
    from app.core.feedback import FeedbackStore

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
    assert {doc["doc_id"] for doc in answer.docs} == {"D1", "D2", "D3"}
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
    # the coarse filter is a prior for unsure labels: docs outside it may only join as admitted dense candidates
    assert answer.answer and all("售后" in doc["labels"] or doc["stage"] == "admitted" for doc in answer.docs)
    assert "admitted_author_labelled:query_unsure" in answer.reasons
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
    from app.core.feedback import FeedbackStore

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


def test_a_run_that_died_after_its_review_is_listed_and_finished(components) -> None:  # type: ignore[no-untyped-def]
    """The review resolved, then the run died in retrieve (as a process killed there would leave it): the thread is
    no longer pending, `unfinished_runs` lists it and `finish` answers it with the reviewed labels, feedback once."""
    from app.core.errors import NotPendingError

    class DiesOnce:
        def __init__(self, kb) -> None:  # type: ignore[no-untyped-def]
            self.kb, self.armed = kb, False

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.kb, name)

        def search(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if self.armed:
                self.armed = False
                raise RuntimeError("simulated crash in retrieve")
            return self.kb.search(*args, **kwargs)

    kb = DiesOnce(components.kb)
    with Assistant(dataclasses.replace(components, kb=kb)) as assistant:
        paused = assistant.ask("你们宣传的和实际不一样")
        assert paused.pending_review and assistant.unfinished_runs() == []
        kb.armed = True
        with pytest.raises(RuntimeError, match="simulated crash"):
            assistant.resume(paused.thread_id, labels=["虚假宣传"], reviewer="dana")
        assert assistant.pending_reviews() == [] and assistant.unfinished_runs() == [paused.thread_id]
        done = assistant.finish(paused.thread_id)
        assert done.labels == ["投诉", "虚假宣传"] and done.label_source == "human" and done.answer
        assert assistant.unfinished_runs() == [] and len(components.feedback.rows(sources=["human"])) == 1
        with pytest.raises(NotPendingError, match="no unfinished run"):
            assistant.finish(paused.thread_id)


# Concurrency and async: one Assistant (one compiled graph) serving many conversations at once.
MIXED = (
    "我的手机屏幕裂了，保修可以换吗？",  # auto
    "以旧换新有什么活动",  # auto, another label set
    "修好的进度怎么样了",  # answered now, review after (provisional)
    "你们宣传的和实际不一样",  # review before the answer
    "电池续航不行",  # auto
)
RESUME_LABELS = {"修好的进度怎么样了": ["维修进度"], "你们宣传的和实际不一样": ["虚假宣传"]}


def _outcome(answer) -> tuple:  # type: ignore[no-untyped-def]
    """Everything a turn's caller sees, except its thread id."""
    return (
        answer.query,
        tuple(answer.labels),
        answer.decision,
        answer.route,
        answer.answer,
        tuple(answer.citations),
        answer.pending_review,
        answer.review.get("mode"),
        tuple(answer.path),
    )


def _reference(assistant: Assistant) -> dict[str, tuple]:  # type: ignore[type-arg]
    expected = {query: _outcome(assistant.ask(query, thread_id=f"ref-{i}")) for i, query in enumerate(MIXED)}
    assert {o[6] for o in expected.values()} == {True, False}  # both kinds of turn are in the mix
    for i, query in enumerate(MIXED):
        if expected[query][6]:
            assistant.resume(f"ref-{i}", labels=RESUME_LABELS[query], reviewer="ref")
    return expected


def test_os_threads_share_one_assistant_without_mixing_turns(components) -> None:  # type: ignore[no-untyped-def]
    import threading

    assistant = Assistant(components)
    expected = _reference(assistant)
    wrong: list[str] = []
    paused: set[str] = set()
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(20):
            query = MIXED[(w + i) % len(MIXED)]
            # a paused thread takes no new turn: pausing queries get their own thread, the rest one per worker
            thread_id = f"w{w}-{i}" if query in RESUME_LABELS else f"chat-{w}"
            answer = assistant.ask(query, thread_id=thread_id)
            with lock:
                if answer.thread_id != thread_id or _outcome(answer) != expected[query]:
                    wrong.append(f"{thread_id}: {_outcome(answer)} != {expected[query]}")
                if answer.pending_review:
                    paused.add(thread_id)

    workers = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert wrong == []
    assert {p.thread_id for p in assistant.pending_reviews()} == paused and len(paused) == 8 * 20 * 2 // 5
    for w in range(8):  # each worker's conversation ends on that worker's own last query
        last = next(MIXED[(w + i) % 5] for i in reversed(range(20)) if MIXED[(w + i) % 5] not in RESUME_LABELS)
        assert assistant.graph.get_state(assistant._config(f"chat-{w}")).values["query"] == last


def test_concurrent_aask_and_aresume(components) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    assistant = Assistant(components)
    expected = _reference(assistant)

    async def main() -> None:
        asks = [(f"a-{i}", MIXED[i % len(MIXED)]) for i in range(20)]
        answers = await asyncio.gather(*(assistant.aask(q, thread_id=t) for t, q in asks))
        assert [(a.thread_id, _outcome(a)) for a in answers] == [(t, expected[q]) for t, q in asks]
        paused = [(a.thread_id, a.query) for a in answers if a.pending_review]
        done = await asyncio.gather(*(assistant.aresume(t, RESUME_LABELS[q], reviewer=t) for t, q in paused))
        for (thread_id, query), answer in zip(paused, done, strict=True):
            assert answer.thread_id == thread_id and answer.review["reviewer"] == thread_id
            assert answer.label_source == "human" and set(RESUME_LABELS[query]) <= set(answer.labels)
        assert assistant.pending_reviews() == []

    asyncio.run(main())


def test_one_thread_id_takes_one_turn_at_a_time(components) -> None:  # type: ignore[no-untyped-def]
    import threading

    assistant = Assistant(components)
    answers = []
    queries = ["我的手机屏幕裂了，保修可以换吗？", "以旧换新有什么活动", "电池续航不行"]
    callers = [
        threading.Thread(target=lambda q=q: answers.append(assistant.ask(q, thread_id="shared"))) for q in queries
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert sorted(a.query for a in answers) == sorted(queries)
    assert all(a.path == ["classify", "vote", "retrieve", "rerank", "answer"] for a in answers)
    history = list(assistant.graph.get_state_history(assistant._config("shared")))
    assert sum(1 for snap in history if snap.metadata and snap.metadata.get("source") == "input") == 3


def test_astream_yields_node_updates_then_the_answer(components) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from app.service.api import Answer, NodeUpdate

    assistant = Assistant(components)
    sync_steps = list(assistant.stream("修好的进度怎么样了", thread_id="s-sync"))

    async def collect(query: str, thread_id: str) -> list:  # type: ignore[type-arg]
        return [step async for step in assistant.astream(query, thread_id=thread_id)]

    steps = asyncio.run(collect("修好的进度怎么样了", "s-async"))
    *updates, answer = steps
    assert isinstance(answer, Answer) and all(isinstance(u, NodeUpdate) for u in updates)
    assert [u.node for u in updates] == answer.path == [u.node for u in sync_steps[:-1]]
    assert answer.path == ["classify", "vote", "extract", "rules", "retrieve", "rerank", "answer", "review"]
    by_node = {u.node: u for u in updates}
    assert by_node["vote"].summary["decision"] == "escalate" and "votes" in by_node["classify"].update
    assert by_node["rules"].summary["confirmation"] == "provisional"
    assert by_node["review"].summary["review"] == "pending" and by_node["review"].update == {}
    assert _outcome(answer) == _outcome(sync_steps[-1]) and answer.pending_review

    with pytest.raises(InputError):
        asyncio.run(collect("   ", "s-bad"))


def test_a_stream_abandoned_early_still_finishes_its_turn(components) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    assistant = Assistant(components)

    async def first_step() -> str:
        async for step in assistant.astream("我的手机屏幕裂了，保修可以换吗？", thread_id="gone"):
            return step.node  # type: ignore[union-attr]
        return ""

    assert asyncio.run(first_step()) == "classify"  # asyncio.run waits for the worker thread
    values = assistant.graph.get_state(assistant._config("gone")).values
    assert values["answer_kind"] == "passages" and values["citations"]
    again = assistant.ask("以旧换新有什么活动", thread_id="gone")  # the thread takes its next turn normally
    assert again.decision == "auto" and not again.pending_review


def test_the_readme_chat_handler(components) -> None:  # type: ignore[no-untyped-def]
    """The chat-service handler of the README, as written there, on the test components."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    assistant = Assistant(components)

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        answer = await assistant.aask(body["text"], thread_id=body["session_id"], user=body.get("user"))
        return JSONResponse(answer.summary())

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    with TestClient(app) as client:
        reply = client.post("/chat", json={"text": "我的手机屏幕裂了，保修可以换吗？", "session_id": "s-42"}).json()
        paused = client.post("/chat", json={"text": "你们宣传的和实际不一样", "session_id": "s-43"}).json()
    assert reply["thread_id"] == "s-42" and reply["decision"] == "auto" and reply["answer"]
    assert paused["pending_review"] and paused["answer"] == ""
    done = assistant.resume("s-43", labels=["虚假宣传"], reviewer="alice")
    assert done.answer and not done.pending_review
