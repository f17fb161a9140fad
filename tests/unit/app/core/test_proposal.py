"""The escalation path's proposal: the fusion of opinions is order-free, bound to the taxonomy's leaves, follows a
unanimous or majority opinion, and never proposes a label no opinion gave."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.proposal import llm_opinion, propose
from app.core.taxonomy import Taxonomy

LEAVES = ["屏幕", "电池", "保修政策", "活动优惠", "服务态度", "其他"]
scores = st.dictionaries(st.sampled_from([*LEAVES, "售后", "投诉", "UNKNOWN"]), st.floats(-1.0, 2.0), max_size=6)
opinions = st.dictionaries(st.sampled_from(["A", "B", "knn", "llm"]), scores, max_size=4)


@given(ops=opinions, rnd=st.randoms())
def test_order_of_opinions_does_not_matter(ops, rnd, taxonomy: Taxonomy) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(ops.items())
    rnd.shuffle(shuffled)
    assert propose(dict(shuffled), taxonomy) == propose(ops, taxonomy)


@given(ops=opinions)
def test_the_proposal_is_expanded_leaves_that_some_opinion_gave(ops, taxonomy: Taxonomy) -> None:  # type: ignore[no-untyped-def]
    proposal = propose(ops, taxonomy)
    assert proposal.labels == taxonomy.expand(proposal.labels)  # coarse parents, taxonomy order
    given_leaves = {label for op in ops.values() for label, score in op.items() if score > 0}
    leaves = [label for label in proposal.labels if label in taxonomy.leaf_ids]
    assert set(leaves) <= given_leaves
    assert bool(leaves) == bool(given_leaves & set(taxonomy.leaf_ids))  # a set whenever any leaf has support
    for label, mean in proposal.scores.items():
        assert 0.0 <= mean <= 1.0
        assert (mean > 0.5) <= (label in leaves)  # a majority-backed leaf is always proposed


@given(labels=st.lists(st.sampled_from(LEAVES), min_size=1, max_size=3, unique=True), n=st.integers(1, 4))
def test_unanimous_opinions_are_the_proposal(labels, n, taxonomy: Taxonomy) -> None:  # type: ignore[no-untyped-def]
    ops = {f"op{i}": dict.fromkeys(labels, 1.0) for i in range(n)}
    assert propose(ops, taxonomy).labels == taxonomy.expand(labels)


def test_a_majority_decides_and_a_lone_voice_does_not(taxonomy: Taxonomy) -> None:
    ops = {
        "A": {"屏幕": 0.9, "保修政策": 0.6},
        "B": {"屏幕": 0.7, "保修政策": 0.2},
        "knn": {"屏幕": 1.0, "售后": 1.0, "保修政策": 1.0},
        "llm": llm_opinion(["屏幕", "电池", "ADMIN", "售后"], taxonomy),
    }
    proposal = propose(ops, taxonomy)
    assert proposal.labels == ["售后", "屏幕"]  # 屏幕: (0.9 + 0.7 + 1 + 1) / 4
    assert proposal.scores["保修政策"] == pytest.approx(0.45)  # (0.6 + 0.2 + 1 + 0) / 4: no majority
    assert proposal.scores["电池"] == pytest.approx(0.25) and proposal.opinions == ["A", "B", "knn", "llm"]


def test_nothing_above_half_proposes_the_best_leaf_alone(taxonomy: Taxonomy) -> None:
    ops = {"A": {"其他": 0.4, "电池": 0.3}, "B": {"其他": 0.2}, "llm": llm_opinion(["电池"], taxonomy)}
    assert propose(ops, taxonomy).labels == ["售后", "电池"]  # 电池 0.43 over 其他 0.2
    assert propose({}, taxonomy).labels == [] and propose({"A": {}}, taxonomy).labels == []
    with pytest.raises(ValueError, match="accept"):
        propose(ops, taxonomy, accept=1)


def test_llm_opinion_names_known_leaves_only(taxonomy: Taxonomy) -> None:
    assert llm_opinion(["屏幕", "售后", "ADMIN", "其他"], taxonomy) == {"屏幕": 1.0, "其他": 1.0}
