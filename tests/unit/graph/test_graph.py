"""The compiled graph: topology, routing, rerank explanations, invalid resume values (widening is in the retrieval
contract suite, tests/unit/app/core/test_kb.py; pauses surviving a restart on each backend in test_api.py)."""

from __future__ import annotations

from app.service.api import Assistant
from graph.builder import build_graph
from graph.routing import after_answer, after_review, after_rules, after_vote
from nodes.rerank import Rerank
from nodes.retrieve import Retrieve

NODES = {"classify", "vote", "extract", "rules", "review", "retrieve", "rerank", "answer"}


# Every edge of the machine drawn in graph/builder.py's docstring, conditional ones included.
EDGES = {
    ("__start__", "classify"),
    ("classify", "vote"),
    ("vote", "retrieve"),  # auto
    ("vote", "extract"),  # escalate
    ("extract", "rules"),
    ("rules", "retrieve"),  # confirmed / provisional
    ("rules", "review"),  # before_answer
    ("review", "retrieve"),  # reviewed before the answer
    ("review", "__end__"),  # reviewed after a provisional answer
    ("retrieve", "rerank"),
    ("rerank", "answer"),
    ("answer", "review"),  # provisional: the review follows the answer
    ("answer", "__end__"),
}


def test_topology(components) -> None:  # type: ignore[no-untyped-def]
    graph = build_graph(components).get_graph()
    assert set(graph.nodes) == NODES | {"__start__", "__end__"}
    assert {(e.source, e.target) for e in graph.edges} == EDGES
    conditional = {(e.source, e.target) for e in graph.edges if e.conditional}
    assert conditional == {edge for edge in EDGES if edge[0] in ("vote", "rules", "review", "answer")}


def test_routing_functions() -> None:
    assert after_vote({"decision": "auto"}) == "retrieve"
    assert after_vote({"decision": "escalate"}) == "extract"
    assert after_vote({}) == "extract"
    assert after_rules({"route": "confirmed"}) == "retrieve"
    assert after_rules({"route": "provisional"}) == "retrieve"
    assert after_rules({"route": "review"}) == "review"
    assert after_answer({"route": "provisional"}) == "review"
    assert after_answer({"route": "auto"}) == "__end__" and after_answer({"route": "confirmed"}) == "__end__"
    assert after_review({"answer_kind": "llm"}) == "__end__"  # the review followed a provisional answer
    assert after_review({"answer_kind": ""}) == "retrieve" and after_review({}) == "retrieve"


def test_rerank_explains_every_score(components) -> None:  # type: ignore[no-untyped-def]
    retrieve = Retrieve(components.kb, components.taxonomy, top_k=3, fetch_k=6)
    state = {"query": "屏幕保修", "labels": ["售后", "屏幕", "保修政策"], "reasons": [], "votes": {}}
    state |= retrieve(state)
    ranked = Rerank(components.taxonomy, components.settings.rerank, top_k=2)(state)["docs"]
    assert len(ranked) == 2
    for doc in ranked:
        assert set(doc["scores"]) == {
            "semantic",
            "semantic_norm",
            "label_match",
            "label_trust",
            "label",
            "keyword",
            "fused",
        }
    assert ranked[0]["scores"]["fused"] >= ranked[1]["scores"]["fused"]


def test_invalid_resume_value_pauses_again(components) -> None:  # type: ignore[no-untyped-def]
    from langgraph.types import Command

    assistant = Assistant(components)
    paused = assistant.ask("修好的进度怎么样了")
    config = {"configurable": {"thread_id": paused.thread_id}}
    assistant.graph.invoke(Command(resume={"labels": ["ADMIN"], "reviewer": "x"}), config)
    snapshot = assistant.graph.get_state(config)
    assert snapshot.interrupts and "unknown labels" in snapshot.interrupts[0].value["error"]
    assistant.graph.invoke(Command(resume={"labels": ["维修进度"], "reviewer": "x"}), config)
    assert assistant.graph.get_state(config).values["labels"] == ["售后", "维修进度"]
