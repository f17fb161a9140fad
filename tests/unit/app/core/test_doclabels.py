"""Doc labels with a confidence: agreement makes them sure, disagreement halves the confidence, rules confirm."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.decision import VoterOutput
from app.core.doclabels import label_doc, mean_leaves, merge_chunks
from app.core.taxonomy import Label, Taxonomy

TAX = Taxonomy(
    (
        Label("售后"),
        Label("销售"),
        Label("屏幕", parent="售后"),
        Label("电池", parent="售后"),
        Label("活动优惠", parent="销售"),
    )
)
THRESHOLDS = {x: 0.5 for x in TAX.ids}
KW = {"min_margin": 0.1, "min_fine_agreement": 0.5}


def out(name: str, **probs: float) -> VoterOutput:
    full = {x: 0.0 for x in TAX.ids} | probs
    return VoterOutput(name, full, THRESHOLDS)


probs = st.fixed_dictionaries({x: st.floats(0.0, 1.0) for x in TAX.ids})


def test_agreeing_voters_give_sure_labels() -> None:
    found = label_doc([out("A", 售后=0.9, 屏幕=0.9), out("B", 售后=0.8, 屏幕=0.7)], TAX, **KW)
    assert found.labels == ["售后", "屏幕"] and found.agreed and found.confidence == pytest.approx(0.8)


def test_disagreeing_voters_give_the_mean_choice_at_half_confidence_per_dissenter() -> None:
    found = label_doc([out("A", 售后=0.9, 屏幕=0.9), out("B", 销售=0.6, 活动优惠=0.6, 售后=0.3, 屏幕=0.3)], TAX, **KW)
    assert found.labels == ["售后", "屏幕"] and not found.agreed  # mean 屏幕 0.6 ≥ 0.5
    assert found.confidence == pytest.approx(0.6 / 2) and "coarse_disagree" in found.reasons
    ruled = label_doc(
        [out("A", 售后=0.9, 屏幕=0.9), out("B", 销售=0.6, 活动优惠=0.6, 售后=0.3, 屏幕=0.3)],
        TAX,
        **KW,
        rule_labels=["屏幕"],
    )
    assert ruled.labels == found.labels and ruled.confidence == pytest.approx(1 - 0.7 / 2)


@given(probs, probs, st.lists(st.sampled_from(TAX.ids), max_size=2))
def test_labels_are_a_parent_closed_nonempty_set_and_confidence_in_unit_range(a, b, rules) -> None:  # type: ignore[no-untyped-def]
    found = label_doc([VoterOutput("A", a, THRESHOLDS), VoterOutput("B", b, THRESHOLDS)], TAX, **KW)
    assert found.labels and set(TAX.expand(found.labels)) == set(found.labels)
    assert 0.0 <= found.confidence <= 1.0
    with_rules = label_doc(
        [VoterOutput("A", a, THRESHOLDS), VoterOutput("B", b, THRESHOLDS)], TAX, **KW, rule_labels=rules
    )
    assert with_rules.labels == found.labels and with_rules.confidence >= found.confidence  # rules only confirm
    assert set(mean_leaves([VoterOutput("A", a, THRESHOLDS)], TAX)) <= set(TAX.leaf_ids)


@given(st.lists(probs, min_size=1, max_size=5))
def test_a_doc_view_is_its_chunks_averaged(chunks) -> None:  # type: ignore[no-untyped-def]
    merged = merge_chunks([VoterOutput("A", p, THRESHOLDS) for p in chunks])
    for x in TAX.ids:
        assert merged.probs[x] == pytest.approx(sum(p[x] for p in chunks) / len(chunks))
    same = merge_chunks([VoterOutput("A", chunks[0], THRESHOLDS)] * 3)
    assert same.probs == pytest.approx(chunks[0])


DISAGREE = [out("A", 售后=0.9, 屏幕=0.9), out("B", 售后=0.7, 电池=0.7, 屏幕=0.2)]  # A: 屏幕, B: 电池


def test_the_llm_is_a_third_opinion_that_confirms_sides_or_disagrees() -> None:
    alone = label_doc(DISAGREE, TAX, **KW)
    assert alone.labels == ["售后", "屏幕"] and alone.confidence == pytest.approx(0.55 / 2)  # B dissents
    confirmed = label_doc(DISAGREE, TAX, **KW, llm_labels=["屏幕"])
    assert confirmed.labels == alone.labels and confirmed.confidence == pytest.approx(1 - (1 - 0.275) / 2)
    assert "llm_confirms" in confirmed.reasons
    sided = label_doc(DISAGREE, TAX, **KW, llm_labels=["电池"])  # two of three: B and the LLM
    assert sided.labels == ["售后", "电池"] and "llm_sides_with:B" in sided.reasons
    assert sided.confidence == pytest.approx(1 - (1 - 0.35 / 2) / 2)  # 电池: mean 0.35, one dissent
    other = label_doc(DISAGREE, TAX, **KW, llm_labels=["活动优惠"])  # nobody's choice: no vote, less sure
    assert other.labels == alone.labels and other.confidence == pytest.approx(alone.confidence / 2)
    assert label_doc(DISAGREE, TAX, **KW, llm_labels=["nope"]) == alone  # an unknown label is no opinion


@given(probs, probs, st.lists(st.sampled_from(TAX.ids), max_size=3))
def test_an_llm_opinion_keeps_labels_parent_closed_and_confidence_in_unit_range(a, b, llm) -> None:  # type: ignore[no-untyped-def]
    views = [VoterOutput("A", a, THRESHOLDS), VoterOutput("B", b, THRESHOLDS)]
    found = label_doc(views, TAX, **KW, llm_labels=llm)
    assert found.labels and set(TAX.expand(found.labels)) == set(found.labels) and 0.0 <= found.confidence <= 1.0
    alone = label_doc(views, TAX, **KW)
    if found.labels != alone.labels:  # it changes labels only to what a voter accepts, with the LLM's agreement
        assert any(r.startswith("llm_sides_with:") for r in found.reasons) and not alone.agreed
