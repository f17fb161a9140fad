"""LabelGateClassifier (the gate as a Runnable) in LCEL, batch and async; the compiled graph invoked as the Runnable
it is, with a config."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.runnables import RunnableBranch, RunnableLambda

from app.core.errors import InputError
from app.service.lc import Classification, LabelGateClassifier

SEED = "我的手机屏幕裂了，保修可以换吗？"


def test_text_to_labels_probabilities_and_decision(components) -> None:  # type: ignore[no-untyped-def]
    out = LabelGateClassifier(components=components).invoke(SEED)
    assert out["decision"] == "auto" and out["query"] == SEED
    assert {"售后", "屏幕", "保修政策"} <= set(out["labels"]) and "电池" not in out["labels"]
    assert out["probabilities"]["屏幕"] > 0.9 > out["probabilities"]["电池"]
    assert set(out["votes"]) == {"A", "B"} and out["reasons"] == ["agree"]
    assert 0.9 < out["confidence"] <= 1.0


def test_an_unsure_query_escalates_with_candidates_and_no_labels(components) -> None:  # type: ignore[no-untyped-def]
    out = LabelGateClassifier(components=components).invoke("修好的进度怎么样了")
    assert out["decision"] == "escalate" and out["labels"] == []
    assert out["candidates"] == ["售后", "维修进度"] and "A:none_accepted" in out["reasons"]


def test_lcel_classifier_pipe_router(components) -> None:  # type: ignore[no-untyped-def]
    def to_desk(c: Classification) -> str:
        return "after-sales" if "售后" in c["labels"] else "sales" if "销售" in c["labels"] else "human"

    chain = LabelGateClassifier(components=components) | RunnableLambda(to_desk)
    assert chain.batch([SEED, "双十一有什么优惠活动", "修好的进度怎么样了"]) == ["after-sales", "sales", "human"]
    branch = LabelGateClassifier(components=components) | RunnableBranch(
        (lambda c: c["decision"] == "auto", lambda c: "answer"), lambda c: "escalate"
    )
    assert branch.invoke(SEED) == "answer"


def test_batch_and_async_agree_with_invoke(components) -> None:  # type: ignore[no-untyped-def]
    classifier = LabelGateClassifier(components=components)
    queries = [SEED, "电池不耐用了有活动吗", "今天天气怎么样"]
    one_by_one = [classifier.invoke(q) for q in queries]
    assert classifier.batch(queries) == one_by_one
    assert asyncio.run(classifier.abatch(queries)) == one_by_one
    assert asyncio.run(classifier.ainvoke(SEED)) == one_by_one[0]


def test_bad_input_is_an_input_error(components) -> None:  # type: ignore[no-untyped-def]
    classifier = LabelGateClassifier(components=components)
    with pytest.raises(InputError, match="empty"):
        classifier.invoke("   ")
    with pytest.raises(InputError, match="must be a string"):
        classifier.invoke(42)  # type: ignore[arg-type]


def test_the_compiled_graph_is_a_runnable_invoked_with_a_config(components) -> None:  # type: ignore[no-untyped-def]
    from langchain_core.runnables import Runnable
    from langgraph.checkpoint.memory import InMemorySaver

    from graph.builder import build_graph

    graph = build_graph(components, checkpointer=InMemorySaver())
    assert isinstance(graph, Runnable)
    config = {"configurable": {"thread_id": "t-1"}, "tags": ["docs"], "metadata": {"user": "u1"}}
    out = graph.invoke({"query": SEED}, config)
    assert out["decision"] == "auto" and out["citations"] and out["answer_kind"] == "passages"
    assert graph.get_state(config).values["answer"] == out["answer"]  # the config's thread holds the run
    [again] = graph.batch([{"query": SEED}], [{"configurable": {"thread_id": "t-2"}}])
    assert again["citations"] == out["citations"]
