"""classify, vote and rules nodes on voter doubles: records, decisions, reasons, confirmation."""

from __future__ import annotations

import pytest

from app.config import VoteSettings
from app.errors import InputError
from app.rules import Rule, RuleSet
from nodes.classify import Classify
from nodes.rules import Rules
from nodes.vote import Vote


def test_classify_records_both_voters_and_resets_the_turn(voters) -> None:  # type: ignore[no-untyped-def]
    out = Classify(voters, max_query_chars=5)({"query": " 屏幕\x00碎了保修吗 ", "docs": [{"id": "old"}]})
    assert out["query"] == "屏幕 碎了"  # control char replaced, stripped, capped at 5
    assert out["reasons"] == ["control_chars_stripped", "query_truncated:5"]
    assert set(out["votes"]) == {"A", "B"} and out["docs"] == [] and out["labels"] == []
    record = out["votes"]["A"]
    assert record["accepted"] == ["售后", "屏幕"] and record["version"] == "test-1"
    assert record["probs"]["屏幕"] > 0.9 > record["probs"]["电池"]
    with pytest.raises(InputError):
        Classify(voters, max_query_chars=5)({"query": "  "})


def run_vote(voters, taxonomy, query: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    state = Classify(voters, max_query_chars=100)({"query": query})
    return Vote(taxonomy, VoteSettings())(state)  # type: ignore[arg-type]


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
    rules = Rules(RuleSet((Rule("promo", ("销售", "活动优惠"), ("活动",)),)), taxonomy)
    votes = {"A": {"accepted": ["售后", "屏幕"]}, "B": {"accepted": []}}
    by_rule = rules({"query": "屏幕活动", "llm_labels": ["活动优惠"], "votes": votes, "reasons": []})
    assert by_rule["route"] == "confirmed" and by_rule["label_source"] == "llm+rules"
    assert by_rule["rule_hits"] == [{"rule": "promo", "labels": ["销售", "活动优惠"], "matched": "活动"}]
    by_voter = rules({"query": "屏幕", "llm_labels": ["屏幕"], "votes": votes, "reasons": []})
    assert by_voter["route"] == "confirmed" and by_voter["label_source"] == "llm+voter"
    assert by_voter["labels"] == ["售后", "屏幕"]
    unbacked = rules({"query": "屏幕", "llm_labels": ["投诉", "服务态度"], "votes": votes, "reasons": []})
    assert unbacked["route"] == "review" and "unconfirmed:服务态度" in unbacked["reasons"]
    no_llm = rules({"query": "活动", "llm_labels": [], "votes": votes, "reasons": []})
    assert no_llm["route"] == "review" and no_llm["reasons"] == ["no_llm_labels"]
    assert "活动优惠" in no_llm["candidates"]  # the rule's label is offered to the reviewer
