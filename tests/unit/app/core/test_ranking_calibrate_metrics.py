"""Retrieval math, calibration and metrics: properties and cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.metrics import exact_match, gate_metrics, macro_f1
from app.core.ranking import (
    chunk_partitions,
    filter_plan,
    fuse,
    keyword_overlap,
    label_match,
    minmax,
    partitions_matching,
    purity,
    widen,
)
from app.core.voters.calibrate import fit_temperature, label_threshold, label_thresholds, sigmoid

WEIGHTS = {"semantic": 0.6, "label": 0.3, "keyword": 0.1}


def test_filter_plan_widens_fine_then_coarse_then_none(taxonomy) -> None:  # type: ignore[no-untyped-def]
    plan = filter_plan(["售后", "屏幕", "销售", "活动优惠"], taxonomy)
    assert [(s.name, s.labels) for s in plan] == [
        ("fine", ("屏幕", "活动优惠")),
        ("coarse", ("售后", "销售")),
        ("none", ()),
    ]
    assert [s.name for s in filter_plan(["投诉"], taxonomy)] == ["fine", "none"]  # coarse-only label
    assert [s.name for s in filter_plan([], taxonomy)] == ["none"]
    assert plan[0].partitions(taxonomy) == ("屏幕", "活动优惠") and plan[-1].partitions(taxonomy) is None
    assert set(plan[1].partitions(taxonomy)) >= {"售后", "屏幕", "电池", "销售", "以旧换新"}


@given(st.data())
def test_partitions_match_exactly_the_chunks_a_label_filter_matches(taxonomy, data) -> None:  # type: ignore[no-untyped-def]
    """Stored in chunk_partitions(L), found through partitions_matching(S) ⟺ L and S share a label."""
    chunk = taxonomy.expand(data.draw(st.lists(st.sampled_from(taxonomy.ids), max_size=4)))
    stage = data.draw(st.lists(st.sampled_from(taxonomy.ids), min_size=1, max_size=4))
    stored, searched = set(chunk_partitions(chunk, taxonomy)), set(partitions_matching(stage, taxonomy))
    assert bool(stored & searched) == bool(set(chunk) & set(stage))
    assert len(stored) <= len(chunk)


@given(st.lists(st.lists(st.integers(0, 20), max_size=8), min_size=1, max_size=4), st.integers(1, 10))
def test_widen_never_drops_earlier_hits(stages, k) -> None:  # type: ignore[no-untyped-def]
    merged, last = widen(stages, k, key=lambda x: x)
    assert len(merged) == len(set(merged))
    for earlier in stages[:last]:
        assert set(earlier) <= set(merged)
    assert merged[: len(dict.fromkeys(stages[0]))] == list(dict.fromkeys(stages[0]))
    if last < len(stages) - 1:
        assert len(merged) >= k


@given(st.lists(st.floats(-5, 5), max_size=10))
def test_minmax_in_unit_interval(values) -> None:  # type: ignore[no-untyped-def]
    scaled = minmax(values)
    assert len(scaled) == len(values) and all(0.0 <= v <= 1.0 for v in scaled)


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 0.5))
def test_fuse_is_monotone_in_each_component(sem, lab, kw, bump) -> None:  # type: ignore[no-untyped-def]
    base = fuse(sem, lab, kw, weights=WEIGHTS)
    assert fuse(sem + bump, lab, kw, weights=WEIGHTS) >= base
    assert fuse(sem, lab + bump, kw, weights=WEIGHTS) >= base
    assert fuse(sem, lab, kw + bump, weights=WEIGHTS) >= base


def test_label_match_keyword_purity(taxonomy) -> None:  # type: ignore[no-untyped-def]
    probs = {"屏幕": 0.9, "活动优惠": 0.2, "售后": 0.95}
    assert label_match(["售后", "屏幕"], probs, taxonomy) == 0.9  # fine labels speak for the doc
    assert label_match(["销售", "活动优惠"], probs, taxonomy) == 0.2
    assert label_match(["售后"], probs, taxonomy) == 0.95
    assert keyword_overlap(["屏幕", "保修"], ["屏幕", "维修"]) == 0.5 and keyword_overlap([], ["x"]) == 0.0
    assert purity([["售后"], ["销售"], ["售后", "销售"]], ["售后"]) == pytest.approx(2 / 3)
    assert purity([], ["售后"]) == 0.0


def test_fit_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 3))
    targets = (rng.random(true_logits.shape) < sigmoid(true_logits)).astype(float)
    assert fit_temperature(true_logits * 3, targets) == pytest.approx(3.0, rel=0.15)
    with pytest.raises(ValueError):
        fit_temperature(true_logits, targets[:10])


@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=40),
    st.floats(0.5, 0.9),
    st.floats(0, 0.09),
)
def test_threshold_properties(rows, target, extra) -> None:  # type: ignore[no-untyped-def]
    probs = np.array([p for p, _ in rows])
    y = np.array([float(t) for _, t in rows])
    low = label_threshold(probs, y, target_precision=target, floor=0.3, ceiling=0.8)
    high = label_threshold(probs, y, target_precision=target + extra, floor=0.3, ceiling=0.8)
    assert 0.3 <= low <= 0.8 and low <= high  # a stricter target never lowers the threshold
    passed = probs >= low
    if y.any() and low < 0.8 and passed.any():
        assert y[passed].mean() >= target


def test_threshold_cases() -> None:
    assert label_threshold(np.array([0.9, 0.8]), np.zeros(2), target_precision=0.9, floor=0.3) == 0.5
    probs, y = np.array([0.95, 0.9, 0.6, 0.4]), np.array([1.0, 1.0, 0.0, 1.0])
    assert label_threshold(probs, y, target_precision=0.99, floor=0.3) == 0.9
    with pytest.raises(ValueError):
        label_thresholds(np.zeros((2, 2)), np.zeros((3, 2)), target_precision=0.9, floor=0.3)


def test_metrics() -> None:
    gold = [["售后", "屏幕"], ["销售"], ["售后", "电池"]]
    pred = [["屏幕", "售后"], ["销售", "活动优惠"], ["售后"]]
    assert exact_match(pred, gold) == pytest.approx(1 / 3)
    assert macro_f1(gold, gold, ["售后", "销售", "屏幕", "电池", "投诉"]) == 1.0  # absent labels are ignored
    assert 0 < macro_f1(pred, gold, ["售后", "销售", "屏幕", "电池"]) < 1
    assert gate_metrics([True, True, False], pred, gold) == {
        "auto_coverage": pytest.approx(2 / 3),
        "auto_precision": 0.5,
    }
    with pytest.raises(ValueError):
        exact_match(pred, gold[:1])
