"""Properties of the drift benchmark's math: growing KBs, exact ranking, widening, metrics, weight search."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ops.eval import drift_math as dm


@st.composite
def pools(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(10, 80))
    shares = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    eligible = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    relevant = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4, unique=True))
    hard = draw(st.lists(st.integers(0, n - 1), max_size=4, unique=True))
    return shares, eligible, relevant, hard, draw(st.integers(1, 30)), draw(st.sampled_from([0.0, 1.0, 3.0, 10.0]))


@given(pools(), st.integers(0, 2**16))
@settings(max_examples=150, deadline=None)
def test_pool_holds_relevant_docs_grows_nested_with_other_label_docs_only(case, seed) -> None:  # type: ignore[no-untyped-def]
    shares, eligible, relevant, hard, base_docs, max_growth = case
    pool = dm.growth_pool(
        shares, eligible, relevant, hard, base_docs=base_docs, max_growth=max_growth, rng=np.random.default_rng(seed)
    )
    if pool is None:  # only when the relevant docs cannot grow max_growth times
        fixed = np.isin(np.arange(len(shares)), relevant + hard)
        others = (~shares & eligible & ~fixed).sum()
        assert max_growth > 0 and len(relevant) > others // max_growth
        return
    assert set(relevant) <= set(pool.base.tolist()) and len(set(pool.base.tolist())) == len(pool.base)
    assert not set(pool.others.tolist()) & set(relevant) | set(hard) & set(pool.others.tolist())
    assert all(not shares[i] and eligible[i] for i in pool.others)
    extra = [i for i in pool.base.tolist() if i not in set(relevant) | set(hard)]
    assert all(shares[i] and eligible[i] for i in extra)
    assert len(pool.base) <= max(base_docs, len(relevant))
    previous: set[int] = set()
    for growth in (0.0, 1.0, 3.0, 10.0):
        if growth > max_growth:
            break
        kb = pool.kb(growth)
        assert previous <= set(kb.tolist())
        assert len(kb) == len(pool.base) + round(growth * len(pool.base))  # room was reserved for max_growth
        previous = set(kb.tolist())


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=40), st.integers(1, 12))
def test_top_is_the_k_best_in_order(values, k) -> None:  # type: ignore[no-untyped-def]
    scores = np.array(values)
    candidates = np.arange(len(values))[::2]
    best = dm.top(scores, candidates, k)
    assert len(best) == min(k, len(candidates)) and set(best.tolist()) <= set(candidates.tolist())
    assert all(scores[a] >= scores[b] for a, b in itertools.pairwise(best))
    rest = set(candidates.tolist()) - set(best.tolist())
    assert all(scores[r] <= scores[best[-1]] for r in rest)


@given(st.integers(1, 10), st.integers(1, 15), st.integers(0, 2**16))
@settings(max_examples=80, deadline=None)
def test_widening_keeps_earlier_stages_and_reaches_k_when_the_kb_can(k, fetch, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    labels = rng.random((30, 3)) < 0.3
    scores, kb = rng.random(30), np.arange(30)
    fetch_k = max(fetch, k)
    found, last = dm.staged(scores, kb, labels, [[0], [0, 1], None], k=k, fetch_k=fetch_k)
    first_stage = dm.top(scores, dm.carries_any(labels, kb, [0]), fetch_k).tolist()
    assert found[: len(first_stage)] == first_stage  # widening never drops or reorders the narrower stage's docs
    assert len(found) >= k and len(set(found)) == len(found)
    assert last == 0 or len(first_stage) < k


def test_metrics_of_known_rankings() -> None:
    perfect = dm.metrics([3, 4, 9], {3, 4}, [True, True, False], k=10)
    assert perfect == {"recall@10": 1.0, "mrr": 1.0, "ndcg@10": pytest.approx(1.0), "purity@10": pytest.approx(2 / 3)}
    late = dm.metrics([1, 2, 3], {3}, [False, False, True], k=2)
    assert late == {"recall@2": 0.0, "mrr": 0.0, "ndcg@2": 0.0, "purity@2": 0.0}
    assert dm.metrics([], {1}, [], k=10)["purity@10"] == 0.0


@given(st.permutations(list(range(8))), st.sets(st.integers(0, 7), min_size=1), st.integers(1, 8))
def test_metrics_are_fractions_and_ndcg_is_highest_for_relevant_first(order, relevant, k) -> None:  # type: ignore[no-untyped-def]
    scored = dm.metrics(order, relevant, [i in relevant for i in order], k)
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in scored.values())
    ideal = sorted(order, key=lambda d: d not in relevant)
    assert dm.metrics(ideal, relevant, [i in relevant for i in ideal], k)[f"ndcg@{k}"] >= scored[f"ndcg@{k}"] - 1e-9


def case(components: list[list[float]], relevant: set[int]) -> dm.RerankCase:
    cands = np.arange(len(components))
    return dm.RerankCase(cands, np.array(components), frozenset(relevant), np.ones(len(cands), dtype=bool))


def test_fused_order_follows_the_weights() -> None:
    comps = np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert dm.fused_order(comps, {"semantic": 1.0, "label": 0.0, "keyword": 0.0}).tolist() == [0, 1, 2]
    assert dm.fused_order(comps, {"semantic": 0.1, "label": 1.0, "keyword": 0.0}).tolist()[0] == 1
    assert dm.fused_order(comps, {"semantic": 0.0, "label": 0.0, "keyword": 1.0}).tolist()[0] == 2


def test_tuning_finds_the_label_weight_that_lifts_relevant_docs() -> None:
    # relevant doc 1 is second by similarity but the only one whose labels match: a label weight puts it first
    cases = [case([[1.0, 0.0, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 0.0]], {1})] * 3
    grid = dm.weight_grid([0.0, 0.5], [0.0])
    best, score = dm.tune(cases, grid, k=1, objective="ndcg@1")
    assert best["label"] == 0.5 and score == 1.0
    assert dm.normalised(best) == {"semantic": 0.6667, "label": 0.3333, "keyword": 0.0}
    with pytest.raises(ValueError):
        dm.tune([], grid, k=1, objective="ndcg@1")


@given(st.lists(st.floats(-5, 5), max_size=20))
def test_minmax_array_matches_ranking_minmax(values) -> None:  # type: ignore[no-untyped-def]
    from app.core.ranking import minmax

    assert np.allclose(dm.minmax_array(np.array(values, dtype=float)), minmax(values))


def handmade(escalated: bool, seed: int = 0):  # type: ignore[no-untyped-def]
    """A 3-category dataset with random vectors, labelled by hand: no models, every branch of the runner."""
    from app.core.taxonomy import Label, Taxonomy
    from app.ops.eval.drift_labels import Labelled
    from app.ops.eval.retrieval import RDoc, RetrievalData, RQuery

    rng = np.random.default_rng(seed)
    tax = Taxonomy((Label("a"), Label("b"), Label("c")))
    docs = [RDoc(f"d{i}", f"文档{i}", ("abc"[i % 3],)) for i in range(150)]
    queries = [RQuery(f"q{j}", f"问题{j}", ("abc"[j % 3],), (f"d{j}", f"d{j + 3}")) for j in range(12)]
    vectors = rng.normal(size=(150, 8)).astype(np.float32)
    qvec = vectors[:12] + rng.normal(scale=0.3, size=(12, 8)).astype(np.float32)
    votes = [{"A": {"probs": {"a": 0.5, "b": 0.3, "c": 0.2}, "accepted": []}} for _ in queries]
    wrong = [["b" if q.labels == ("a",) else "a"] for q in queries]  # the voters are always wrong
    data = RetrievalData(docs, queries, tax, native=False, root=Path("."))
    labelled = Labelled(
        eligible=np.ones(150, dtype=bool),
        doc_labels=[list(d.labels) for d in docs],
        doc_vectors=vectors,
        query_vectors=qvec,
        query_votes=votes,
        gate_labels=wrong,
        labelgate_labels=wrong,
        escalated=[escalated] * len(queries),
        report={},
    )
    return data, labelled


@pytest.mark.parametrize("escalated", [True, False])
def test_reviewed_queries_filter_on_the_reviewers_labels_and_auto_ones_keep_the_voters(escalated) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import Settings
    from app.ops.eval.drift import DriftOptions, DriftRun, evaluate

    data, labelled = handmade(escalated)
    run = DriftRun(data, labelled, Settings(), DriftOptions(growth=(0.0, 3.0), base_docs=12, fetch_k=20))
    queries, skipped = run.queries(range(len(data.queries)))
    assert len(queries) == 12 and not skipped
    scored, _ = evaluate(run, queries, {"semantic": 1.0, "label": 1.0, "keyword": 0.0})
    results = scored["results"]
    assert results["oracle"]["3"]["purity@10"] == 1.0 and results["dense"]["0"]["purity@10"] == 1.0
    assert results["gated"]["3"]["purity@10"] == 0.0  # a wrong strict filter finds only the wrong category
    reviewed, voters = results["labelgate_reviewed"]["3"], results["labelgate"]["3"]
    assert reviewed == (voters if not escalated else reviewed)
    if escalated:  # a person fixed the labels: trusted fully, the label term pushes the wrong category down
        assert reviewed["recall@10"] == results["oracle"]["3"]["recall@10"] > voters["recall@10"]
        assert reviewed["purity@10"] >= 0.9 > voters["purity@10"]  # soft gating: admitted docs only fill the tail
    assert scored["kb_docs"] == {"0": 12.0, "3": 48.0}


@given(st.lists(st.integers(0, 30), unique=True, max_size=20), st.integers(1, 5), st.integers(1, 12))
def test_chunks_scored_as_documents_count_each_document_once(ranked: list[int], size: int, k: int) -> None:
    owner = np.arange(31) // size  # consecutive chunks of one document
    flags = [bool(c % 2) for c in ranked]
    docs, topical = dm.by_document(ranked, flags, owner)
    assert len(docs) == len(set(docs)) and set(docs) == {int(owner[c]) for c in ranked}
    assert topical == [flags[[int(owner[c]) for c in ranked].index(d)] for d in docs]  # each at its best chunk
    relevant = {int(owner[c]) for c in ranked[:1]}
    if relevant:
        assert dm.scored(ranked, relevant, flags, k, owner)[f"recall@{k}"] == 1.0  # the top chunk's doc is found
    assert dm.scored(ranked, relevant, flags, k, None) == dm.metrics(ranked, relevant, flags, k)


@st.composite
def groups(draw):  # type: ignore[no-untyped-def]
    out = {}
    for g in ("0", "1"):
        rows = []
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(2, 12))
            comps = draw(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=n, max_size=n))
            rel = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))
            rows.append(case(comps, set(rel)))
        out[g] = rows
    return out


@given(groups(), st.floats(0, 1), st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_tuning_under_a_recall_floor_keeps_it_when_the_grid_can(groups, f0: float, f1: float) -> None:  # type: ignore[no-untyped-def]
    grid = dm.weight_grid([0.0, 0.5, 2.0], [0.0, 0.5])
    floor = {"0": f0, "1": f1}
    weights, score, met = dm.tune_with_floor(groups, floor, grid, k=3, objective="ndcg@3")

    def recall(w, g):  # type: ignore[no-untyped-def]
        return float(np.mean([dm.reranked(c, w, 3)["recall@3"] for c in groups[g]]))

    feasible = [w for w in grid if all(recall(w, g) >= floor[g] - 1e-9 for g in groups)]
    assert met == bool(feasible)
    if feasible:
        assert weights in feasible
        best = max(np.mean([dm.reranked(c, w, 3)["ndcg@3"] for cs in groups.values() for c in cs]) for w in feasible)
        assert score == pytest.approx(best)


def leaves(labels):  # type: ignore[no-untyped-def]
    return [x for x in labels if not x.startswith("C")]


rows_strategy = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(st.sampled_from(["C1", "C2", "a", "b", "c"]), max_size=3, unique=True),
        st.lists(st.sampled_from(["C1", "C2", "a", "b", "c"]), min_size=1, max_size=3, unique=True),
    ),
    max_size=30,
)


@given(rows_strategy)
def test_source_reliability_is_the_share_right_per_source_and_leaves_out_unmeasured_ones(rows) -> None:  # type: ignore[no-untyped-def]
    found = dm.source_reliability(rows, leaves)
    auto = [set(leaves(labels)) == set(leaves(gold)) for escalated, labels, gold in rows if not escalated]
    provisional = [bool(labels) and set(labels) <= set(gold) for escalated, labels, gold in rows if escalated]
    assert set(found) == {name for name, ok in (("voters", auto), ("provisional", provisional)) if ok}
    for name, ok in (("voters", auto), ("provisional", provisional)):
        if ok:
            assert found[name] == pytest.approx(sum(ok) / len(ok), abs=1e-4) and 0.0 <= found[name] <= 1.0
    assert dm.source_reliability([(False, ["a"], ["C1", "a"]), (False, ["b"], ["a"]), (True, [], ["a"])], leaves) == {
        "voters": 0.5,
        "provisional": 0.0,
    }
