"""The report's math: properties (hypothesis) and the cases that matter."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import InputError
from app.ops.monitor import stats

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
LABELS = ["屏幕", "电池", "活动优惠", "以旧换新", "其他"]
counts_st = st.dictionaries(st.sampled_from(LABELS), st.integers(0, 50)).filter(lambda d: sum(d.values()) > 0)
label_rows_st = st.lists(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3), min_size=1, max_size=25)


@given(st.integers(1, 10_000), st.sampled_from("smhdw"))
def test_durations_count_back_from_now(amount: int, unit: str) -> None:
    assert stats.parse_since(f"{amount}{unit}", now=NOW, tz=UTC) == NOW - amount * stats.UNITS[unit]


def test_iso_dates_and_bad_input() -> None:
    plus8 = timezone(timedelta(hours=8))
    assert stats.parse_since("2026-03-09", now=NOW, tz=plus8) == datetime(2026, 3, 9, tzinfo=plus8).timestamp()
    assert stats.parse_since("2026-03-09T10:00:00+00:00", now=NOW, tz=plus8) == NOW - 26 * 3600
    for bad in ("", "7", "d7", "-1d", "0h", "7 days", "yesterday", "2026-13-01", "2027-01-01"):
        with pytest.raises(InputError, match="--since"):
            stats.parse_since(bad, now=NOW, tz=UTC)


@given(st.floats(1, 400 * 86400), st.integers(1, 100))
def test_bucket_width_is_nice_and_fits(span: float, max_buckets: int) -> None:
    width = stats.bucket_width(span, max_buckets=max_buckets)
    assert math.ceil(span / width) <= max_buckets
    assert width in stats.NICE_WIDTHS or width % stats.NICE_WIDTHS[-1] == 0
    narrower = [w for w in stats.NICE_WIDTHS if w < width]
    assert not narrower or math.ceil(span / narrower[-1]) > max_buckets  # the narrowest that fits


@given(
    st.floats(0, 1e9), st.floats(1, 30 * 86400), st.sampled_from(stats.NICE_WIDTHS), st.integers(-12, 14),
    st.lists(st.floats(0, 1), max_size=30),
)  # fmt: skip
def test_every_time_lands_in_exactly_its_bucket(
    start: float, span: float, width: int, hours: int, where: list[float]
) -> None:
    end = start + span
    starts = stats.bucket_starts(start, end, width=width, offset=hours * 3600)
    assert starts[0] <= start < starts[0] + width and starts[-1] < end <= starts[-1] + width
    assert all(b - a == pytest.approx(width) for a, b in itertools.pairwise(starts))
    for share in where:
        ts = start + share * span * 0.999999
        i = stats.bucket_index(ts, first=starts[0], width=width)
        assert 0 <= i < len(starts) and starts[i] <= ts < starts[i] + width + 1e-6


def test_day_buckets_start_at_local_midnight() -> None:
    plus8 = 8 * 3600
    starts = stats.bucket_starts(NOW - 3 * 86400, NOW, width=86400, offset=plus8)
    assert {datetime.fromtimestamp(s, timezone(timedelta(hours=8))).hour for s in starts} == {0}


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_rates_are_shares_or_gaps(hits: int, total: int) -> None:
    if hits > total:
        with pytest.raises(ValueError):
            stats.rate(hits, total)
        return
    value = stats.rate(hits, total)
    assert value is None if total == 0 else 0.0 <= value <= 1.0


@given(counts_st, counts_st, counts_st)
def test_js_distance_is_a_bounded_metric(p: dict[str, int], q: dict[str, int], r: dict[str, int]) -> None:
    d = stats.js_distance
    assert 0.0 <= d(p, q) <= 1.0
    assert d(p, q) == pytest.approx(d(q, p))
    assert d(p, p) == pytest.approx(0.0, abs=1e-6)
    assert d(p, r) <= d(p, q) + d(q, r) + 1e-9  # the triangle inequality (it is a distance, not a divergence)


@given(counts_st, st.integers(2, 20))
def test_js_distance_ignores_scale_and_hits_one_on_disjoint_mixes(p: dict[str, int], k: int) -> None:
    assert stats.js_distance(p, {label: n * k for label, n in p.items()}) == pytest.approx(0.0, abs=1e-6)
    assert stats.js_distance({"a": 1}, {"b": 3}) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.js_distance(p, {})


@given(label_rows_st, label_rows_st)
def test_permutation_p_is_a_p_value(a: list[list[str]], b: list[list[str]]) -> None:
    p = stats.permutation_p(a, b, permutations=50)
    assert 1 / 51 <= p <= 1.0
    assert stats.permutation_p(a, a, permutations=50) == 1.0  # the same queries in both windows: nothing moved


def test_permutation_p_separates_a_real_shift_from_noise() -> None:
    base = [["屏幕"]] * 60 + [["电池"]] * 40
    assert stats.permutation_p(base, [["以旧换新"]] * 30 + [["屏幕"]] * 20) < 0.01
    assert stats.permutation_p(base, [["屏幕"]] * 6 + [["电池"]] * 4) > 0.5


group_st = st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(group_st, group_st)
def test_two_proportion_p_is_symmetric_and_one_for_equal_rates(a: tuple[int, int], b: tuple[int, int]) -> None:
    (ka, na), (kb, nb) = a, b
    p = stats.two_proportion_p(ka, na, kb, nb)
    assert 0.0 <= p <= 1.0 and p == pytest.approx(stats.two_proportion_p(kb, nb, ka, na))
    assert stats.two_proportion_p(ka, na, ka * 2, na * 2) == pytest.approx(1.0)


alarm_args = st.fixed_dictionaries(
    {
        "value": st.one_of(st.none(), st.floats(0, 1)),
        "p_value": st.one_of(st.none(), st.floats(0, 1)),
        "alpha": st.floats(0.001, 0.2),
        "baseline_n": st.integers(0, 500),
        "recent_n": st.integers(0, 500),
        "min_queries": st.integers(1, 200),
    }
)


@given(alarm_args, st.floats(0, 1), st.floats(0, 0.5))
def test_raising_a_bound_never_raises_an_alarm(args: dict[str, float], bound: float, raise_by: float) -> None:
    before = stats.alarm_status(bound=bound, **args)  # type: ignore[arg-type]
    after = stats.alarm_status(bound=bound + raise_by, **args)  # type: ignore[arg-type]
    assert not (after == "alarm" and before != "alarm")
    if args["baseline_n"] < args["min_queries"] or args["recent_n"] < args["min_queries"]:
        assert before == after == "insufficient_data"


def test_alarm_cases() -> None:
    sizes = {"baseline_n": 100, "recent_n": 100, "min_queries": 50, "alpha": 0.01}
    assert stats.alarm_status(0.3, bound=0.2, p_value=0.001, **sizes) == "alarm"
    assert stats.alarm_status(0.3, bound=0.2, p_value=0.2, **sizes) == "ok"  # large, but chance does that
    assert stats.alarm_status(0.2, bound=0.2, p_value=0.0, **sizes) == "ok"  # at the bound is not past it
    assert stats.alarm_status(0.9, bound=0.2, p_value=0.0, **(sizes | {"recent_n": 49})) == "insufficient_data"


@given(st.lists(st.floats(0, 1e4), max_size=40), st.integers(0, 15))
def test_slowest_are_the_largest_in_order(latencies: list[float], n: int) -> None:
    items = list(enumerate(latencies))
    top = stats.slowest(items, key=lambda item: item[1], n=n)
    assert len(top) == min(n, len(items))
    assert [t[1] for t in top] == sorted((t[1] for t in top), reverse=True)
    rest = [item for item in items if item not in top]
    assert not top or all(item[1] <= top[-1][1] for item in rest)


@given(st.lists(st.floats(0, 1e4), min_size=1, max_size=40), st.floats(0, 100))
def test_percentiles_lie_within_the_data(values: list[float], q: float) -> None:
    value = stats.percentile(values, q)
    assert value is not None and min(values) - 1e-9 <= value <= max(values) + 1e-9
    assert stats.percentile([], q) is None
