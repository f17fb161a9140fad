"""Selective-classification math: risk–coverage, precision/coverage targets, ECE, OOS threshold, worst labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ops.eval import scores

rows = st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60)


@given(rows)
def test_full_coverage_is_plain_accuracy_and_curves_stay_in_bounds(data) -> None:  # type: ignore[no-untyped-def]
    conf, ok = zip(*data, strict=True)
    assert scores.precision_at_coverage(conf, ok, 1.0) == pytest.approx(np.mean(ok))
    curve = scores.risk_coverage(conf, ok)
    assert [c for c, _ in curve] == list(scores.COVERAGES)
    assert all(0.0 <= r <= 1.0 for _, r in curve)
    assert curve[-1][1] == pytest.approx(1 - np.mean(ok), abs=1e-6)
    assert 0.0 <= scores.ece(conf, ok) <= 1.0 and 0.0 <= scores.aurc(conf, ok) <= 1.0


@given(rows, st.floats(0.5, 1.0))
def test_coverage_at_precision_keeps_the_promise(data, target) -> None:  # type: ignore[no-untyped-def]
    conf, ok = zip(*data, strict=True)
    coverage = scores.coverage_at_precision(conf, ok, target)
    if coverage > 0:
        assert scores.precision_at_coverage(conf, ok, coverage) >= target - 1e-9
    threshold = scores.threshold_for_precision(conf, ok, target)
    kept = np.asarray(conf) >= threshold
    assert not kept.any() or np.asarray(ok)[kept].mean() >= target - 1e-9 or len(set(conf)) < len(conf)


def test_ranking_errors_last_beats_ranking_them_first() -> None:
    ok = [True] * 8 + [False] * 2
    good, bad = np.linspace(1, 0.1, 10), np.linspace(0.1, 1, 10)
    assert scores.aurc(good, ok) < scores.aurc(bad, ok)
    assert scores.coverage_at_precision(good, ok, 0.99) == pytest.approx(0.8)
    assert scores.coverage_at_precision(bad, ok, 0.99) == 0.0


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    conf = [0.75] * 4
    assert scores.ece(conf, [True, True, True, False]) == pytest.approx(0.0)
    assert scores.ece([1.0, 1.0], [False, False]) == pytest.approx(1.0)
    assert scores.reliability([0.05, 0.95], [False, True], bins=10)[1]["count"] == 1


def test_oos_threshold_separates_low_confidence_out_of_scope_rows() -> None:
    conf = [0.9, 0.8, 0.85, 0.2, 0.3, 0.7]
    correct = [True, True, True, False, False, False]
    is_oos = [False, False, False, True, True, False]
    t = scores.oos_threshold(conf, correct, is_oos, [False] * 6)
    assert 0.3 < t <= 0.8
    assert scores.oos_threshold(conf, correct, [False] * 6, [False] * 6) == 0.0  # no OOS rows: never reject


def test_worst_labels_lists_lowest_f1_with_confusions() -> None:
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    worst = scores.worst_labels(pred, gold, k=2)
    assert [w["label"] for w in worst] == ["c", "a"]
    assert worst[0]["confused_with"] == {"a": 1} and worst[0]["f1"] == 0.0
    with pytest.raises(ValueError):
        scores.worst_labels(["a"], [])
