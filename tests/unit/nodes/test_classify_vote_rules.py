"""classify, vote and rules nodes on voter doubles: records, decisions, reasons, confirmation."""

from __future__ import annotations

import pytest

from app.core.config import VoteSettings
from app.core.errors import InputError
from app.core.feedback import FeedbackStore
from app.core.rules import Rule, RuleSet
from graph.state import apply_update, plain
from nodes.classify import Classify
from nodes.rules import Rules
from nodes.vote import Vote


def test_classify_records_both_voters_and_resets_the_turn(voters) -> None:  # type: ignore[no-untyped-def]
    before = {
        "query": " 屏幕\x00碎了保修吗 ",
        "docs": [{"chunk_id": "old"}],
        "reasons": ["vote:agree"],
        "route": "auto",
    }
    out = Classify(voters, max_query_chars=5)(before)  # type: ignore[arg-type]
    assert out["query"] == "屏幕 碎了"  # control char replaced, stripped, capped at 5
    # the previous turn's reasons are replaced, not appended to (the reducer is bypassed once, at the turn's start)
    after = apply_update(before, out)
    assert after["reasons"] == ["control_chars_stripped", "query_truncated:5"] and after["route"] == ""
    assert plain(out)["reasons"] == after["reasons"]
    assert set(out["votes"]) == {"A", "B"} and out["docs"] == [] and out["labels"] == []
    record = out["votes"]["A"]
    assert record["accepted"] == ["售后", "屏幕"] and record["version"] == "test-1"
    assert record["probs"]["屏幕"] > 0.9 > record["probs"]["电池"]
    with pytest.raises(InputError):
        Classify(voters, max_query_chars=5)({"query": "  "})


def run_vote(voters, taxonomy, query: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    state = Classify(voters, max_query_chars=100)({"query": query})
    return Vote(taxonomy, VoteSettings())(state)  # type: ignore[arg-type]


def test_single_threaded_voters_run_at_once_with_the_same_result(voters) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import threading

    seen: set[str] = set()

    def tracking(voter):  # type: ignore[no-untyped-def]
        def logits(texts):  # type: ignore[no-untyped-def]
            seen.add(threading.current_thread().name)
            return voter.logits_fn(texts)

        return dataclasses.replace(voter, logits_fn=logits, meta={"one_thread_per_call": True})

    sequential = Classify(voters, max_query_chars=100)
    parallel = Classify([tracking(v) for v in voters], max_query_chars=100)
    assert sequential.pool is None and parallel.pool is not None
    assert Classify([tracking(voters[0]), voters[1]], max_query_chars=100).pool is None  # one multi-threaded voter
    for query in ("我的手机屏幕裂了，保修可以换吗？", "双十一优惠", "天气"):
        assert parallel({"query": query})["votes"] == sequential({"query": query})["votes"]  # type: ignore[typeddict-item]
    assert seen == {threading.current_thread().name, "voter_0"}  # A on the caller's thread, B on the pool's


def test_vote_auto_when_both_agree(voters, taxonomy) -> None:  # type: ignore[no-untyped-def]
    out = run_vote(voters, taxonomy, "屏幕碎了能保修吗")
    assert out["decision"] == "auto" and out["route"] == "auto" and out["label_source"] == "voters"
    assert out["labels"] == ["售后", "屏幕", "保修政策"] and out["reasons"] == ["agree"]
    assert 0.9 < out["confidence"] <= 1.0


def test_vote_escalates_disagreement_and_out_of_scope(voters, taxonomy) -> None:  # type: ignore[no-untyped-def]
    disagree = run_vote(voters, taxonomy, "修好了没有")  # only B knows 维修进度
    assert disagree["decision"] == "escalate" and "A:none_accepted" in disagree["reasons"]
    assert "labels" not in disagree and disagree["candidates"] == ["售后", "维修进度"]
    nothing = run_vote(voters, taxonomy, "你好")
    assert nothing["decision"] == "escalate" and "out_of_scope" in nothing["reasons"]


def test_rules_confirm_llm_labels_or_send_to_review(taxonomy) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore("sqlite:///:memory:")
    rules = Rules(RuleSet((Rule("promo", ("销售", "活动优惠"), ("活动",)),)), taxonomy, store)
    votes = {"A": {"accepted": ["售后", "屏幕"], "version": "v1"}, "B": {"accepted": [], "version": "v2"}}
    config = {"configurable": {"thread_id": "t-1"}}

    def run(query: str, llm_labels: list[str]):  # type: ignore[no-untyped-def]
        return rules({"query": query, "llm_labels": llm_labels, "votes": votes, "reasons": []}, config)

    by_rule = run("屏幕活动", ["活动优惠"])
    assert by_rule["route"] == "confirmed" and by_rule["label_source"] == "llm+rules"
    assert by_rule["rule_hits"] == [{"rule": "promo", "labels": ["销售", "活动优惠"], "matched": "活动"}]
    by_voter = run("屏幕", ["屏幕"])
    assert by_voter["route"] == "confirmed" and by_voter["label_source"] == "llm+voter"
    assert by_voter["labels"] == ["售后", "屏幕"]
    assert [(r.query, r.labels, r.source, r.thread_id) for r in store.rows()] == [
        ("屏幕活动", ["销售", "活动优惠"], "llm+rules", "t-1"),
        ("屏幕", ["售后", "屏幕"], "llm+voter", "t-1"),
    ]
    assert store.rows()[0].model_versions == {"A": "v1", "B": "v2"}
    unbacked = run("屏幕", ["投诉", "服务态度"])  # 投诉 reviews before the answer
    assert unbacked["route"] == "review" and "unconfirmed:服务态度" in unbacked["reasons"]
    assert unbacked["reasons"][-1] == "review:before_answer" and "labels" not in unbacked
    no_llm = run("活动", [])  # 销售 reviews after the answer: answer now under the coarse filter
    assert no_llm["route"] == "provisional" and no_llm["reasons"] == ["no_llm_labels", "review:after_answer"]
    assert no_llm["labels"] == ["销售"] and no_llm["label_source"] == "provisional"
    assert "活动优惠" in no_llm["candidates"]  # the rule's label is offered to the reviewer
    voted = {
        "query": "屏幕碎了",
        "llm_labels": ["服务态度"],
        "votes": votes,
        "reasons": [],
        "candidates": ["售后", "屏幕"],
    }
    provisional = rules(voted | {"proposal": ["销售", "活动优惠"]}, config)  # type: ignore[arg-type]
    assert provisional["route"] == "review"  # the LLM's 投诉 label demands a person before the answer
    voted["llm_labels"] = ["电池"]
    provisional = rules(voted | {"proposal": ["销售", "活动优惠"]}, config)  # type: ignore[arg-type]
    assert provisional["route"] == "provisional" and provisional["labels"] == ["售后"]  # the vote's, as measured
    assert {"屏幕", "电池"} <= set(provisional["candidates"]) and "活动优惠" not in provisional["candidates"]
    # the proposal (it moves as reviewed examples arrive) never routes: the review page shows it from the state
    nothing = rules({"query": "你好", "llm_labels": [], "votes": votes, "reasons": []}, config)
    assert nothing["route"] == "review"  # nothing known: no filter to answer under, so a person first
    assert len(store.rows()) == 2  # unconfirmed sets are not feedback
