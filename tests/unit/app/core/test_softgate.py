"""Properties of soft gating: no trust = dense order, admitting dense candidates never loses a doc or recall."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.core.softgate import ADMIT_GIVEN_BELOW, admissible, admit, doc_confidence, label_term, query_trust
from app.ops.eval import drift_math as dm

unit = st.floats(0.0, 1.0, allow_nan=False)
ids = st.lists(st.integers(0, 40), unique=True, max_size=25)


@given(unit, unit, unit)
def test_label_term_is_in_unit_range_and_one_without_trust(match: float, trust: float, conf: float) -> None:
    assert 0.0 <= label_term(match, trust, conf) <= 1.0
    assert label_term(match, 0.0, conf) == label_term(match, trust, 0.0) == 1.0  # nothing known: no push
    assert abs(label_term(match, 1.0, 1.0) - match) < 1e-12  # full trust: the plain label match
    assert label_term(1.0, trust, conf) == 1.0  # a matching doc is never pushed down


@given(unit, unit, unit, unit)
def test_more_trust_never_lifts_a_mismatching_doc(match: float, low: float, high: float, conf: float) -> None:
    low, high = sorted((low, high))
    assert label_term(match, high, conf) <= label_term(match, low, conf) + 1e-12


@given(ids, ids)
def test_admitting_never_drops_a_candidate_and_keeps_the_filtered_order(filtered: list[int], dense: list[int]) -> None:
    merged, admitted = admit(filtered, dense, key=lambda x: x)
    assert merged[: len(filtered)] == filtered
    assert set(merged) == set(filtered) | set(dense) and len(merged) == len(set(merged))
    assert admitted == len(set(dense) - set(filtered))


@st.composite
def cases(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(12, 40))
    # distinct similarities at a cosine's resolution (ties have no dense order; subnormal gaps vanish in min-max)
    scores = np.array(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))) / 10**6
    kb = np.arange(n)
    filtered = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    relevant = frozenset(draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=5)))
    match = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    conf = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    return scores, kb, filtered, relevant, match, conf


def rank(scores, kb, filtered, match, trust, conf, k, fetch_k):  # type: ignore[no-untyped-def]
    dense = dm.top(scores, kb, fetch_k).tolist()
    cands = np.array(admit(filtered, dense, key=lambda x: x)[0], dtype=np.int64)
    comps = np.column_stack(
        [dm.minmax_array(scores[cands]), [label_term(match[d], trust, conf[d]) for d in cands], np.zeros(len(cands))]
    )
    return cands[dm.fused_order(comps, {"semantic": 0.5, "label": 0.5, "keyword": 0.0})].tolist()


@given(cases(), st.integers(1, 10))
def test_zero_trust_ranks_exactly_as_dense(case, k: int) -> None:  # type: ignore[no-untyped-def]
    scores, kb, filtered, relevant, match, conf = case
    ranked = rank(scores, kb, filtered, match, 0.0, conf, k, fetch_k=k)
    dense = dm.top(scores, kb, k).tolist()
    assert sorted(ranked[:k], key=lambda d: (-scores[d], d)) == dense
    assert (
        dm.metrics(ranked, relevant, [True] * len(ranked), k)[f"recall@{k}"]
        == dm.metrics(dense, relevant, [True] * len(dense), k)[f"recall@{k}"]
    )


@given(cases(), unit, st.integers(1, 10))
def test_admitted_candidates_never_lower_recall_against_the_filtered_set(case, trust: float, k: int) -> None:  # type: ignore[no-untyped-def]
    """The union holds every filtered candidate, so recall over the candidates (before the top-k cut) only grows."""
    scores, kb, filtered, relevant, _match, _conf = case
    merged, _ = admit(filtered, dm.top(scores, kb, k).tolist(), key=lambda x: x)
    assert len(relevant & set(merged)) >= len(relevant & set(filtered))


@given(cases(), unit, st.integers(1, 10))
def test_a_dense_top_doc_leaves_the_top_k_only_for_confident_mismatch(case, trust: float, k: int) -> None:  # type: ignore[no-untyped-def]
    """Docs whose labels match (or whose labels nobody trusts) keep dense's top k places against the rest."""
    scores, kb, filtered, _relevant, match, conf = case
    safe = conf * 0.0  # no doc label is trusted: every dense top-k doc stays
    ranked = rank(scores, kb, filtered, match, trust, safe, k, fetch_k=k)
    assert set(ranked[:k]) == set(dm.top(scores, kb, k).tolist())


def test_trust_of_people_and_machines() -> None:
    assert query_trust("human", 0.1) == 1.0
    assert query_trust("voters", 0.8, reliability={"voters": 0.5}) == 0.4
    assert query_trust("voters", 0.8) == 0.8
    assert doc_confidence("given", None) == 1.0 and doc_confidence("voters", None) == 0.0
    assert doc_confidence("voters", 0.7) == 0.7 and doc_confidence("voters", 1.5) == 1.0


def test_tree_match_counts_each_level_half(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from app.core.softgate import tree_match

    probs = {"售后": 1.0, "屏幕": 1.0}
    assert tree_match(["售后", "屏幕"], probs, taxonomy) == 1.0
    assert tree_match(["售后", "电池"], probs, taxonomy) == 0.5  # the query's category, another topic
    assert tree_match(["销售", "活动优惠"], probs, taxonomy) == 0.0  # another category
    assert tree_match([], probs, taxonomy) == 0.0 and tree_match(["nope"], probs, taxonomy) == 0.0


@given(st.floats(0.0, 1.0), st.sampled_from(["voters", "given", "human", ""]))
def test_author_labelled_docs_join_past_the_filter_only_when_the_query_labels_are_unsure(trust, source) -> None:  # type: ignore[no-untyped-def]
    assert admissible(source, trust) == (source != "given" or trust < ADMIT_GIVEN_BELOW)
    assert admissible("voters", 1.0) and not admissible("given") and admissible("given", 0.0)


def test_a_doc_with_all_the_querys_labels_matches_more_than_one_with_some(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from app.core.softgate import tree_match

    probs = {"售后": 1.0, "屏幕": 0.9, "保修政策": 0.9}  # the seed: a broken screen, is it under warranty
    both = tree_match(["售后", "屏幕", "保修政策"], probs, taxonomy)
    screen_only = tree_match(["售后", "屏幕"], probs, taxonomy)
    assert both == 1.0 and screen_only == 0.75 == tree_match(["售后", "保修政策"], probs, taxonomy)
    assert tree_match(["售后", "电池"], probs, taxonomy) == 0.5  # its category, none of its topics
    single = {"售后": 1.0, "屏幕": 0.9, "保修政策": 0.2}  # sure of one topic: the best of the doc's labels, as before
    assert tree_match(["售后", "屏幕"], single, taxonomy) == tree_match(["售后", "屏幕", "保修政策"], single, taxonomy)


@given(
    st.dictionaries(st.sampled_from(["屏幕", "电池", "保修政策", "活动优惠", "维修进度"]), st.floats(0, 1), max_size=5),
    st.lists(st.sampled_from(["售后", "销售", "屏幕", "电池", "保修政策", "活动优惠", "维修进度"]), max_size=4),
)
def test_tree_match_is_in_0_1_and_more_labels_never_match_less(probs: dict[str, float], labels: list[str]) -> None:
    from app.core.softgate import tree_match
    from app.core.taxonomy import Taxonomy
    from tests.conftest import ROOT

    taxonomy = Taxonomy.load(ROOT / "data" / "taxonomy.yaml")
    query = {**probs, **{taxonomy.coarse_of(q): p for q, p in probs.items()}}
    doc = taxonomy.expand(labels)
    score = tree_match(doc, query, taxonomy)
    assert 0.0 <= score <= 1.0
    assert tree_match(taxonomy.expand([*labels, *probs]), query, taxonomy) >= score - 1e-12
