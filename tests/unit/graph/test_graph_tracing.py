"""Each node's own trace run carries what it decided (metadata) and the route (tags), seen by langchain_core tracers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langgraph.types import Command

from app.service.api import Assistant
from graph.tracing import PAUSED, Traced, pending_summary, route_tags, summary

NODES = ("classify", "vote", "extract", "rules", "review", "retrieve", "rerank", "answer")


def _turn(assistant: Assistant, graph_input: Any, thread_id: str) -> tuple[Run, dict[str, Run]]:
    """One graph run with a run collector: the root run and its node runs by name."""
    collector = RunCollectorCallbackHandler()
    config: Any = {"configurable": {"thread_id": thread_id}, "callbacks": [collector], "run_name": "labelgate"}
    assistant.graph.invoke(graph_input, config)
    [root] = collector.traced_runs
    return root, {run.name: run for run in root.child_runs if run.name in NODES}


def _meta(run: Run) -> dict[str, Any]:
    return dict(run.extra["metadata"])


def test_auto_path_node_runs(components) -> None:  # type: ignore[no-untyped-def]
    root, nodes = _turn(Assistant(components), {"query": "我的手机屏幕裂了，保修可以换吗？"}, "t-auto")
    assert list(nodes) == ["classify", "vote", "retrieve", "rerank", "answer"]
    classify = _meta(nodes["classify"])
    assert set(classify["probs"]) == {"A", "B"} and all(len(top) == 3 for top in classify["probs"].values())
    assert classify["probs"]["A"]["屏幕"] > 0.9 and "屏幕" in classify["accepted"]["A"]
    assert classify["model_versions"] == {"A": "test-1", "B": "test-1"}
    vote = _meta(nodes["vote"])
    assert vote["decision"] == "auto" and {"屏幕", "保修政策", "售后"} <= set(vote["labels"])
    assert isinstance(vote["confidence"], float) and isinstance(vote["reasons"], list)
    retrieve = _meta(nodes["retrieve"])
    assert retrieve["filter_used"]["stage"] == "fine" and retrieve["widened"] is False
    assert {doc["doc_id"] for doc in retrieve["docs"]} == {"D1", "D2", "D3"}
    rerank = _meta(nodes["rerank"])
    assert [doc["fused"] for doc in rerank["docs"]] == sorted((doc["fused"] for doc in rerank["docs"]), reverse=True)
    answer = _meta(nodes["answer"])
    assert answer["answer_kind"] == "passages" and set(answer["citations"]) == {"D1", "D2", "D3"}
    assert "route:auto" not in nodes["classify"].tags  # not known before the vote
    assert all("route:auto" in nodes[name].tags for name in ("vote", "retrieve", "rerank", "answer"))
    assert root.tags.count("route:auto") == 1
    records = json.dumps([_meta(run) for run in nodes.values()], ensure_ascii=False)
    assert "屏幕损坏属于保修范围" not in records  # ids and scores, never the doc texts


def test_review_pause_and_resume_runs(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    root, nodes = _turn(assistant, {"query": "你们宣传的和实际不一样"}, "t-review")
    assert list(nodes) == ["classify", "vote", "extract", "rules", "review"]
    assert (
        _meta(nodes["extract"])["llm_labels"] == []
        and "extract_skipped:llm_not_configured" in (_meta(nodes["extract"])["reasons"])
    )
    assert _meta(nodes["rules"])["confirmation"] == "review" and _meta(nodes["rules"])["rule_hits"] == []
    review = _meta(nodes["review"])
    assert review["review"] == "pending" and review["review_mode"] == "before_answer"
    assert "虚假宣传" in review["candidates"] and "review_error" not in review
    assert {"route:escalated", PAUSED} <= set(nodes["review"].tags)
    assert {"route:escalated", PAUSED} <= set(root.tags)

    _, again = _turn(assistant, Command(resume={"labels": ["不存在"], "reviewer": "x"}), "t-review")
    assert "unknown labels" in _meta(again["review"])["review_error"] and PAUSED in again["review"].tags

    root, done = _turn(assistant, Command(resume={"labels": ["虚假宣传"], "reviewer": "bob"}), "t-review")
    assert list(done) == ["review", "retrieve", "rerank", "answer"]
    review = _meta(done["review"])
    assert (review["reviewer"], review["labels"], review["label_source"]) == ("bob", ["投诉", "虚假宣传"], "human")
    assert all("route:reviewed" in run.tags and PAUSED not in run.tags for run in done.values())
    assert "route:reviewed" in root.tags and PAUSED not in root.tags and "route:escalated" not in root.tags


def test_provisional_route_is_tagged(components) -> None:  # type: ignore[no-untyped-def]
    root, nodes = _turn(Assistant(components), {"query": "修好的进度怎么样了"}, "t-provisional")
    assert _meta(nodes["rules"])["confirmation"] == "provisional"
    for name in ("rules", "retrieve", "answer", "review"):
        assert {"route:escalated", "route:provisional"} <= set(nodes[name].tags), name
    assert PAUSED in nodes["review"].tags and _meta(nodes["review"])["review_mode"] == "after_answer"
    assert {"route:provisional", PAUSED} <= set(root.tags)


def test_a_new_turn_does_not_inherit_the_last_route(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    thread = uuid.uuid4().hex
    _turn(assistant, {"query": "我的手机屏幕裂了，保修可以换吗？"}, thread)
    _, nodes = _turn(assistant, {"query": "以旧换新有什么活动"}, thread)
    assert not [tag for tag in nodes["classify"].tags if tag.startswith("route:")]


def test_records_and_tags_are_pure_functions_of_the_state() -> None:
    assert summary("no-such-node", {"x": 1}) == {} and summary("vote", None)["labels"] == []
    assert route_tags({}) == [] and route_tags({"decision": ""}) == []
    assert route_tags({"decision": "auto", "route": "auto"}) == ["route:auto"]
    assert route_tags({"decision": "escalate", "route": "confirmed"}) == ["route:escalated"]
    assert route_tags({"decision": "escalate", "route": "provisional"}) == ["route:escalated", "route:provisional"]
    assert route_tags({"decision": "escalate", "route": "reviewed", "label_source": "human"}) == ["route:reviewed"]
    payload = {"mode": "before_answer", "candidates": [{"label": "投诉"}], "error": "bad"}
    assert pending_summary(payload) == {
        "review": "pending",
        "review_mode": "before_answer",
        "candidates": ["投诉"],
        "review_error": "bad",
    }


def test_a_traced_node_without_tracers_just_runs() -> None:
    def node(state: dict[str, Any]) -> dict[str, Any]:
        return {"seen": state["query"]}

    assert Traced(node)({"query": "q"}, {}) == {"seen": "q"}  # type: ignore[typeddict-item]
    assert not Traced(node).takes_config
