"""The gate's decision math: properties (hypothesis) and the cases that matter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.decision import (
    VoterOutput,
    accepted_labels,
    confirm,
    jaccard,
    leaf_complete,
    provisional_labels,
    separation_margin,
    vote,
)
from app.core.taxonomy import Taxonomy
from tests.conftest import ROOT

TAXONOMY = Taxonomy.load(ROOT / "data" / "taxonomy.yaml")
IDS = TAXONOMY.ids
probs_st = st.fixed_dictionaries({label: st.floats(0, 1) for label in IDS})
thr_st = st.fixed_dictionaries({label: st.floats(0.05, 0.95) for label in IDS})
labels_st = st.lists(st.sampled_from(IDS), max_size=5)


def voter(name: str, probs: dict[str, float], thresholds: dict[str, float] | None = None) -> VoterOutput:
    return VoterOutput(name, probs, thresholds or dict.fromkeys(IDS, 0.5))


def policy(a: VoterOutput, b: VoterOutput, **kw: float):  # type: ignore[no-untyped-def]
    return vote(
        a, b, TAXONOMY, min_margin=kw.get("min_margin", 0.15), min_fine_agreement=kw.get("min_fine_agreement", 1.0)
    )


@given(probs_st, thr_st, st.floats(0, 0.5))
def test_raising_thresholds_never_adds_labels(probs, thresholds, raise_by) -> None:  # type: ignore[no-untyped-def]
    higher = {label: t + raise_by for label, t in thresholds.items()}
    assert set(accepted_labels(probs, higher)) <= set(accepted_labels(probs, thresholds))


@given(labels_st, labels_st)
def test_jaccard_symmetric_bounded(a, b) -> None:  # type: ignore[no-untyped-def]
    assert jaccard(a, b) == jaccard(b, a)
    assert 0.0 <= jaccard(a, b) <= 1.0
    assert jaccard(a, a) == 1.0


def test_separation_margin_cases() -> None:
    assert separation_margin({"x": 0.9, "y": 0.2}, ["x"]) == 0.9 - 0.2
    assert separation_margin({"x": 0.9}, []) == -1.0
    assert separation_margin({"x": 0.9}, ["x"]) == 1.0


@settings(max_examples=200)
@given(probs_st, probs_st, thr_st, thr_st)
def test_vote_is_symmetric_and_auto_labels_come_from_both(pa, pb, ta, tb) -> None:  # type: ignore[no-untyped-def]
    a, b = voter("A", pa, ta), voter("B", pb, tb)
    ab, ba = policy(a, b), policy(voter("A", pb, tb), voter("B", pa, ta))
    assert ab.decision == ba.decision and ab.labels == ba.labels
    if ab.decision == "auto":
        both = set(TAXONOMY.expand(a.accepted)) & set(TAXONOMY.expand(b.accepted))
        assert set(ab.labels) <= both and ab.labels
        assert ab.reasons == ["agree"]
    else:
        assert ab.reasons and "agree" not in ab.reasons
    assert set(ab.labels) <= set(IDS) and 0.0 <= ab.confidence <= 1.0
    if ab.decision == "auto":
        assert leaf_complete(ab.labels, TAXONOMY)


def test_leaf_complete_cases() -> None:
    assert leaf_complete(["售后", "屏幕"], TAXONOMY)
    assert leaf_complete(["其他"], TAXONOMY)  # a coarse label without children is a leaf
    assert not leaf_complete(["售后"], TAXONOMY)
    assert not leaf_complete(["售后", "销售", "活动优惠"], TAXONOMY)  # 售后 says no topic
    assert not leaf_complete([], TAXONOMY)


def test_agreeing_on_a_coarse_label_alone_escalates() -> None:
    probs = dict.fromkeys(IDS, 0.0) | {"售后": 0.95}
    result = policy(voter("A", probs), voter("B", probs))
    assert result.decision == "escalate" and result.reasons == ["coarse_only"]
    assert result.candidates == ["售后"]


def test_agreeing_confident_voters_decide_automatically() -> None:
    probs = dict.fromkeys(IDS, 0.01) | {"售后": 0.99, "屏幕": 0.97, "保修政策": 0.95}
    result = policy(voter("A", probs), voter("B", probs))
    assert result.decision == "auto" and result.labels == ["售后", "屏幕", "保修政策"]
    assert result.confidence == 0.95


def test_escalation_reasons() -> None:
    none = dict.fromkeys(IDS, 0.01)
    screen = none | {"售后": 0.99, "屏幕": 0.97}
    promo = none | {"销售": 0.99, "活动优惠": 0.97}
    assert "out_of_scope" in policy(voter("A", none), voter("B", none)).reasons
    assert policy(voter("A", screen), voter("B", none)).reasons == ["B:none_accepted"]
    split = policy(voter("A", screen), voter("B", promo))
    assert {"coarse_disagree", "fine_disagree"} <= set(split.reasons)
    assert split.candidates == ["售后", "销售", "屏幕", "活动优惠"]
    close = policy(voter("A", screen | {"电池": 0.45, "屏幕": 0.55}), voter("B", screen))  # 0.55 - 0.45 < 0.15
    assert close.reasons == ["A:low_margin"]
    partly = policy(voter("A", screen | {"保修政策": 0.9}), voter("B", screen), min_fine_agreement=0.5)
    assert partly.decision == "auto" and partly.labels == ["售后", "屏幕"]  # only what both accept


@given(labels_st, labels_st, labels_st)
def test_confirm_never_drops_rule_labels_nor_leaves_taxonomy(llm, rules, voters) -> None:  # type: ignore[no-untyped-def]
    result = confirm([*llm, "ADMIN"], rules, voters, TAXONOMY)
    assert set(TAXONOMY.expand(rules)) <= set(result.labels)
    assert set(result.labels) <= set(IDS)
    if result.confirmed:
        assert llm and not result.unconfirmed


def test_confirm_policy_cases() -> None:
    assert confirm(["活动优惠"], ["活动优惠"], [], TAXONOMY).source == "llm+rules"
    assert confirm(["屏幕"], [], ["售后", "屏幕"], TAXONOMY).source == "llm+voter"
    unbacked = confirm(["服务态度"], [], ["屏幕"], TAXONOMY)
    assert not unbacked.confirmed and unbacked.unconfirmed == ["服务态度"]
    assert not confirm([], ["活动优惠"], ["活动优惠"], TAXONOMY).confirmed
    assert confirm(["ADMIN"], [], [], TAXONOMY).labels == []


@given(
    voted=st.lists(st.sampled_from(["屏幕", "电池", "活动优惠", "服务态度", "其他", "售后", "ADMIN"]), max_size=3),
    others=st.lists(st.sampled_from(["屏幕", "活动优惠", "其他", "销售"]), max_size=3),
)
def test_provisional_labels_are_the_votes_coarse_else_the_others(voted: list[str], others: list[str]) -> None:
    coarse = provisional_labels(voted, others, TAXONOMY)
    assert set(coarse) <= set(TAXONOMY.coarse_ids)
    from_vote = {TAXONOMY.coarse_of(x) for x in voted if x in TAXONOMY}
    assert set(coarse) == (from_vote or {TAXONOMY.coarse_of(x) for x in others})
