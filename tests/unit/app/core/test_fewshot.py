"""The few-shot example store and the kNN vote: top-k selection, dedupe, vote math (property tests), the store with a
character-count encoder double and a SQLite feedback store (provenance rules, new rows without a rebuild, cache)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.data import Example
from app.core.feedback import FeedbackStore
from app.core.fewshot import (
    ExampleStore,
    KnnVote,
    Shot,
    ThirdOpinion,
    knn_vote,
    knn_weights,
    latest_per_text,
    third_opinion,
    top_k,
)
from app.testing import CharEncoder

LABELS = ["屏幕", "电池", "保修政策", "活动优惠", "其他"]
sims = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
label_sets = st.lists(st.sampled_from(LABELS), min_size=1, max_size=3, unique=True)
neighbour_lists = st.lists(st.tuples(label_sets, sims), min_size=1, max_size=12)


# ---- top-k ----------------------------------------------------------------------------------------------------------


@given(st.lists(sims, max_size=30), st.integers(0, 35), st.sets(st.integers(0, 29), max_size=5))
def test_top_k_is_the_k_best_in_order_without_the_excluded(values: list[float], k: int, exclude: set[int]) -> None:
    picked = top_k(values, k, exclude=exclude)
    allowed = [i for i in range(len(values)) if i not in exclude]
    assert len(picked) == min(k, len(allowed)) and len(set(picked)) == len(picked)
    assert not set(picked) & exclude
    assert [values[i] for i in picked] == sorted((values[i] for i in picked), reverse=True)
    worst_in = min((values[i] for i in picked), default=math.inf)
    assert all(values[i] <= worst_in for i in allowed if i not in picked)


def test_top_k_ties_keep_the_earlier_row() -> None:
    assert top_k([0.5, 0.9, 0.9, 0.1], 2) == [1, 2]
    assert top_k([0.5, 0.9, 0.9, 0.1], 2, exclude={1}) == [2, 0]


# ---- dedupe ---------------------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["a", " a", "b", "c "]), label_sets), max_size=12))
def test_latest_per_text_keeps_one_row_per_text_with_the_latest_labels(rows: list[tuple[str, list[str]]]) -> None:
    shots = [Shot(text, tuple(labels), "human") for text, labels in rows]
    out = latest_per_text(shots)
    texts = [shot.text for shot in out]
    assert len(texts) == len(set(texts)) == len({text.strip() for text, _ in rows})
    for shot in out:
        assert shot.labels == tuple([labels for text, labels in rows if text.strip() == shot.text][-1])


# ---- kNN vote -------------------------------------------------------------------------------------------------------


@given(neighbour_lists, st.randoms(use_true_random=False))
def test_knn_vote_is_permutation_invariant(neighbours: list[tuple[list[str], float]], rnd: object) -> None:
    shuffled = list(neighbours)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = knn_vote(neighbours), knn_vote(shuffled)
    assert a.labels == b.labels and a.top_similarity == b.top_similarity
    assert a.scores.keys() == b.scores.keys()
    assert all(math.isclose(a.scores[x], b.scores[x], abs_tol=1e-9) for x in a.scores)


@given(neighbour_lists)
def test_knn_scores_are_shares_and_accepted_labels_hold_half(neighbours: list[tuple[list[str], float]]) -> None:
    vote = knn_vote(neighbours)
    assert all(-1e-9 <= score <= 1 + 1e-9 for score in vote.scores.values())
    assert set(vote.labels) == {label for label, score in vote.scores.items() if score >= 0.5}
    assert (vote.support >= 0.5) == bool(vote.labels)
    if vote.labels:
        assert vote.margin <= vote.support


@given(label_sets, st.lists(st.tuples(label_sets, st.floats(-1.0, 1.0)), max_size=11), st.floats(0.01, 0.2))
def test_a_label_far_away_never_wins_over_an_exact_match(
    exact: list[str], others: list[tuple[list[str], float]], temperature: float
) -> None:
    k = len(others) + 1
    gap = temperature * math.log(k) + 1e-6  # further than this: all the others together weigh less than the match
    far = [(labels, min(s, 1.0 - gap)) for labels, s in others]
    vote = knn_vote([*far, (exact, 1.0)], temperature=temperature)
    assert set(vote.labels) <= set(exact)
    assert set(exact) <= set(vote.labels)  # and the match's own labels always win


@given(st.lists(sims, min_size=1, max_size=10), st.floats(0.01, 1.0))
def test_knn_weights_rank_like_similarity(values: list[float], temperature: float) -> None:
    weights = knn_weights(values, temperature=temperature)
    assert max(weights) == 1.0
    for s1, w1 in zip(values, weights, strict=True):
        for s2, w2 in zip(values, weights, strict=True):
            if s1 > s2:
                assert w1 >= w2


def test_knn_vote_edges() -> None:
    assert knn_vote([]).labels == []
    with pytest.raises(ValueError, match="temperature"):
        knn_vote([(["屏幕"], 0.9)], temperature=0)
    split = knn_vote([(["屏幕"], 0.9), (["电池"], 0.9)])  # an even split: both reach a half
    assert split.labels == ["屏幕", "电池"] or set(split.labels) == {"屏幕", "电池"}
    near_far = knn_vote([(["屏幕"], 0.95), (["电池"], 0.70), (["电池"], 0.70)], temperature=0.05)
    assert near_far.labels == ["屏幕"] and near_far.top_similarity == 0.95


# ---- third opinion --------------------------------------------------------------------------------------------------


def _knn(labels: list[str], support: float = 0.9, top: float = 0.9) -> KnnVote:
    return KnnVote(labels, {x: support for x in labels}, support, support, top)


def test_third_opinion_decides_only_with_a_voter_and_overridable_reasons() -> None:
    a, b = ["售后", "屏幕"], ["售后", "电池"]
    knn = _knn(["售后", "屏幕"])
    assert third_opinion(a, b, ["fine_disagree"], knn) == ["售后", "屏幕"]
    assert third_opinion(a, a, ["B:low_margin"], knn) == ["售后", "屏幕"]
    assert third_opinion(a, b, ["fine_disagree", "out_of_scope"], knn) is None  # never over out_of_scope
    assert third_opinion(a, b, [], knn) is None  # not an escalation
    assert third_opinion(b, b, ["A:low_margin"], knn) is None  # the kNN agrees with neither voter
    assert third_opinion(a, b, ["fine_disagree"], _knn(["售后", "屏幕"], support=0.6)) is None
    strict = ThirdOpinion(min_support=0.5, min_similarity=0.95)
    assert third_opinion(a, b, ["fine_disagree"], knn, strict) is None
    assert third_opinion(a, b, ["coarse_disagree"], knn) is None
    assert third_opinion(a, b, ["coarse_disagree"], knn, ThirdOpinion(overridable=frozenset({"coarse_disagree"})))


@given(label_sets, label_sets, label_sets, st.lists(st.sampled_from(["A:low_margin", "fine_disagree", "out_of_scope"])))
def test_third_opinion_only_ever_returns_a_voters_set(
    a: list[str], b: list[str], knn_labels: list[str], reasons: list[str]
) -> None:
    decided = third_opinion(a, b, reasons, _knn(knn_labels, support=1.0))
    assert decided is None or set(decided) in (set(a), set(b))
    if "out_of_scope" in reasons:
        assert decided is None


# ---- the store ------------------------------------------------------------------------------------------------------


TRAIN = [
    Example("屏幕碎了能换吗", ("售后", "屏幕")),
    Example("电池不耐用怎么办", ("售后", "电池")),
    Example("保修期是多久", ("售后", "保修政策")),
    Example("有什么优惠活动", ("销售", "活动优惠")),
    Example("今天天气怎么样", ("其他",)),
]


def test_nearest_ranks_by_similarity_and_excludes_the_query_itself(taxonomy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ExampleStore(CharEncoder(), taxonomy, base=TRAIN, cache_dir=tmp_path)
    shots = store.nearest_text("屏幕碎了", 2)
    assert shots[0].text == "屏幕碎了能换吗" and shots[0].labels == ("售后", "屏幕") and shots[0].source == "train"
    assert shots[0].similarity >= shots[1].similarity
    own = store.nearest_text("屏幕碎了能换吗", 5)
    assert "屏幕碎了能换吗" not in [s.text for s in own] and len(own) == 4


def test_feedback_rows_join_by_provenance_without_a_rebuild(taxonomy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite'}")
    feedback.add(thread_id="t1", query="屏幕碎了能换吗", labels=["保修政策"], source="human", reviewer="ann")
    encoder = CharEncoder()
    store = ExampleStore(encoder, taxonomy, base=TRAIN, feedback=feedback, cache_dir=tmp_path)
    assert len(store) == 5 and store.counts() == {"train": 4, "human": 1}  # the human relabelled a train row
    assert store.nearest_text("屏幕碎了", 1)[0].labels == ("售后", "保修政策")
    calls = len(encoder.calls)
    feedback.add(thread_id="t2", query="手机进水了开不了机", labels=["系统故障"], source="llm+rules", reviewer="rules")
    feedback.add(thread_id="t3", query="手机进水了能修吗", labels=["屏幕"], source="llm+voter", reviewer="voters")
    feedback.add(thread_id="t4", query="ADMIN 手机进水", labels=["ADMIN"], source="human", reviewer="x")  # stale label
    shots = store.nearest_text("手机进水了", 3)
    assert shots[0].text == "手机进水了开不了机" and shots[0].source == "llm+rules"
    assert "手机进水了能修吗" not in [s.text for s in shots]  # llm+voter rows are not examples (as in retraining)
    assert all(set(s.labels) <= set(taxonomy.ids) for s in shots)
    assert encoder.calls[calls:] == [1, 1]  # the new row embedded alone (then the query); nothing re-embedded
    assert len(store) == 6


def test_the_base_matrix_is_cached_by_content(taxonomy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second, changed = CharEncoder(), CharEncoder(), CharEncoder()
    assert len(ExampleStore(first, taxonomy, base=TRAIN, cache_dir=tmp_path)) == 5
    assert len(ExampleStore(second, taxonomy, base=TRAIN, cache_dir=tmp_path)) == 5
    assert first.calls == [5] and second.calls == []  # the second process start embeds nothing
    ExampleStore(changed, taxonomy, base=[*TRAIN, Example("换新机", ("销售",))], cache_dir=tmp_path).warm()
    assert changed.calls == [6]
