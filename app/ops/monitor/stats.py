"""The report's math: time buckets, rates, percentiles, label-mix distance and the drift alarm rule.

Pure functions over plain data with keyword-only options; property-tested in tests/unit/app/ops/monitor/test_stats.py.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal, TypeVar

import numpy as np

from app.core.errors import InputError

T = TypeVar("T")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
# bucket widths a reader can name: 1, 5, 15, 30 min, 1, 3, 6, 12 h, 1 day, 1 week
NICE_WIDTHS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
AlarmStatus = Literal["alarm", "ok", "insufficient_data"]


def parse_since(text: str, *, now: float, tz: tzinfo) -> float:
    """`7d`, `24h`, `30m`, `90s`, `2w` before `now`, or an ISO date/time (naive ones are in `tz`) → epoch seconds."""
    match = _DURATION.match(text)
    if match:
        amount = float(match.group(1)) * UNITS[match.group(2)]
        if amount <= 0:
            raise InputError(f"--since must be a positive duration, got {text!r}")
        return now - amount
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--since must be a duration like 7d, 24h, 30m or an ISO date like 2026-01-31, got {text!r}"
        ) from None
    start = (when if when.tzinfo else when.replace(tzinfo=tz)).timestamp()
    if start >= now:
        raise InputError(f"--since {text!r} is not in the past")
    return start


def bucket_width(span: float, *, max_buckets: int = 48) -> int:
    """The narrowest nice width that covers `span` seconds in at most `max_buckets` buckets (whole weeks beyond)."""
    if span <= 0 or max_buckets < 1:
        raise ValueError("span and max_buckets must be positive")
    for width in NICE_WIDTHS:
        if math.ceil(span / width) <= max_buckets:
            return width
    return NICE_WIDTHS[-1] * math.ceil(span / (NICE_WIDTHS[-1] * max_buckets))


def bucket_starts(start: float, end: float, *, width: float, offset: float = 0.0) -> list[float]:
    """Bucket starts covering [start, end), aligned to multiples of `width` in local time (`offset` = UTC offset s),
    so day buckets begin at local midnight."""
    if width <= 0 or end <= start:
        raise ValueError("width must be positive and end after start")
    first = math.floor((start + offset) / width) * width - offset
    count = math.ceil((end - first) / width)
    return [first + i * width for i in range(count)]


def bucket_index(ts: float, *, first: float, width: float) -> int:
    """Which bucket (from `first`, `width` wide) holds the time `ts`."""
    return math.floor((ts - first) / width)


def rate(hits: int, total: int) -> float | None:
    """hits / total, or None when there is nothing to divide (a gap in a chart, never a fake 0)."""
    if hits < 0 or total < 0 or hits > total:
        raise ValueError(f"rate needs 0 <= hits <= total, got {hits}/{total}")
    return hits / total if total else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated q-th percentile (0–100); None for no values."""
    if not 0 <= q <= 100:
        raise ValueError("q must be in [0, 100]")
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def shares(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts as a distribution (each / total); empty when the total is 0."""
    if any(v < 0 for v in counts.values()):
        raise ValueError("counts must be non-negative")
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()} if total else {}


def _js(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(min(1.0, max(0.0, (kl_p + kl_q) / 2))))


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon distance (base 2) between two label distributions given as counts or shares: a metric in
    [0, 1] — 0 for the same mix, 1 for mixes with no label in common."""
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0.0) for k in keys], dtype=float)
    b = np.array([q.get(k, 0.0) for k in keys], dtype=float)
    if (a < 0).any() or (b < 0).any() or a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("js_distance needs two non-empty, non-negative distributions")
    return _js(a, b)


def permutation_p(
    baseline: Sequence[Sequence[str]], recent: Sequence[Sequence[str]], *, permutations: int = 300, seed: int = 0
) -> float:
    """How often a random split of the same queries into windows of these sizes moves the label mix at least as far
    as the observed split (label lists per query; p in (0, 1]). Small windows move a lot by chance alone."""
    labels = sorted({label for row in [*baseline, *recent] for label in row})
    if not baseline or not recent or not labels:
        return 1.0
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(baseline) + len(recent), len(labels)))
    for i, row in enumerate([*baseline, *recent]):
        for label in row:
            counts[i, index[label]] += 1

    def distance(order: np.ndarray) -> float:
        a, b = counts[order[: len(baseline)]].sum(0), counts[order[len(baseline) :]].sum(0)
        return _js(a, b) if a.sum() and b.sum() else 0.0

    observed = distance(np.arange(len(counts)))
    rng = np.random.default_rng(seed)
    hits = sum(distance(rng.permutation(len(counts))) >= observed - 1e-12 for _ in range(permutations))
    return (1 + hits) / (1 + permutations)


def two_proportion_p(hits_a: int, total_a: int, hits_b: int, total_b: int) -> float:
    """Two-sided p-value of a pooled two-proportion z-test (1.0 when either group is empty or nothing varies)."""
    for hits, total in ((hits_a, total_a), (hits_b, total_b)):
        rate(hits, total)  # validates
    if not total_a or not total_b:
        return 1.0
    pooled = (hits_a + hits_b) / (total_a + total_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    if se == 0:
        return 1.0
    z = abs(hits_a / total_a - hits_b / total_b) / se
    return math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Alarm:
    name: str
    status: AlarmStatus
    value: float | None  # the moved amount (distance, or |rate change|)
    bound: float
    p_value: float | None
    baseline_n: int
    recent_n: int
    detail: str


def alarm_status(
    value: float | None,
    *,
    bound: float,
    p_value: float | None,
    alpha: float,
    baseline_n: int,
    recent_n: int,
    min_queries: int,
) -> AlarmStatus:
    """Alarm when both windows hold at least `min_queries` and the change is past `bound` *and* unlikely by chance
    (p < alpha); too few queries is its own state, never a silent ok."""
    if baseline_n < min_queries or recent_n < min_queries or value is None:
        return "insufficient_data"
    chance = p_value is not None and p_value >= alpha
    return "alarm" if value > bound and not chance else "ok"


def slowest(items: Iterable[T], *, key: Callable[[T], float], n: int) -> list[T]:
    """The n items with the largest key, largest first (ties keep their input order)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return heapq.nlargest(n, items, key=key)
