"""The numbers of `labelgate report`: turns (a query's first run and its resumes), per-bucket volume and rates, the
baseline-vs-recent label mix and escalation rate with their alarms, the slowest runs. JSON-serialisable."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from app.core.config import MonitorSettings, Settings
from app.core.decisionlog import Decision, DecisionLog
from app.core.errors import InputError
from app.ops.monitor import stats

OUTCOMES = ("auto", "confirmed", "review", "error")  # voters alone / LLM + rules or voter / a person / failed
NONE_LABEL = "(none)"
TOP_LABELS = 7  # the label-mix chart's own series; the rest are summed as "other"


@dataclass(frozen=True)
class Turn:
    """One query: its first run, and its last run (the latest resume, or the ask itself)."""

    ask: Decision
    final: Decision
    resumes: int

    @property
    def outcome(self) -> str:
        if self.ask.error or not self.ask.decision:
            return "error"
        if self.ask.decision == "auto":
            return "auto"
        return "review" if self.ask.pending_review else "confirmed"

    @property
    def mix_labels(self) -> list[str]:
        return list(self.final.leaf_labels) or [NONE_LABEL]


def group_turns(rows: Sequence[Decision]) -> tuple[list[Turn], list[Decision]]:
    """Each ask starts a turn; a resume belongs to the latest earlier ask on its thread. Resumes whose ask is not in
    `rows` (asked before the range) come back separately."""
    asks: dict[str, list[Any]] = {}
    order: list[list[Any]] = []
    orphans = []
    for row in sorted(rows, key=lambda r: (r.created, r.id)):
        if row.kind == "resume":
            if row.thread_id in asks:
                asks[row.thread_id][1] = row
                asks[row.thread_id][2] += 1
            else:
                orphans.append(row)
            continue
        entry = [row, row, 0]
        asks[row.thread_id] = entry
        order.append(entry)
    return [Turn(ask, final, n) for ask, final, n in order], orphans


def _iso(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _rates(turns: Sequence[Turn], low_confidence: float) -> dict[str, Any]:
    outcomes = Counter(turn.outcome for turn in turns)
    decided = [turn for turn in turns if turn.outcome != "error"]
    n = len(decided)
    low = sum(turn.ask.confidence is not None and turn.ask.confidence < low_confidence for turn in decided)
    top_p: dict[str, list[float]] = {}
    for turn in decided:
        for name, vote in turn.ask.votes.items():
            if vote.get("p") is not None:
                top_p.setdefault(name, []).append(float(vote["p"]))
    return {
        "queries": len(turns),
        **{outcome: outcomes[outcome] for outcome in OUTCOMES},
        "auto_rate": stats.rate(outcomes["auto"], n),
        "escalation_rate": stats.rate(outcomes["confirmed"] + outcomes["review"], n),
        "review_rate": stats.rate(outcomes["review"], n),
        "low_confidence_rate": stats.rate(low, n),
        "disagreement_rate": stats.rate(sum(turn.ask.disagree for turn in decided), n),
        "error_rate": stats.rate(outcomes["error"], len(turns)),
        "latency_p50_ms": stats.percentile([turn.ask.latency_ms for turn in turns], 50),
        "latency_p95_ms": stats.percentile([turn.ask.latency_ms for turn in turns], 95),
        "voter_top_p": {name: sum(ps) / len(ps) for name, ps in sorted(top_p.items())},  # mean top-label probability
    }


def _label_counts(turns: Sequence[Turn]) -> Counter[str]:
    return Counter(label for turn in turns if turn.outcome != "error" for label in turn.mix_labels)


def _alarms(baseline: list[Turn], recent: list[Turn], m: MonitorSettings) -> tuple[list[stats.Alarm], dict[str, Any]]:
    """The two drift alarms: the label mix (JS distance, permutation test) and the escalation rate (z-test)."""
    base = [t for t in baseline if t.outcome != "error"]
    new = [t for t in recent if t.outcome != "error"]
    counts_b, counts_r = _label_counts(base), _label_counts(new)
    distance = stats.js_distance(counts_b, counts_r) if counts_b and counts_r else None
    p_mix = None
    if distance is not None:
        p_mix = stats.permutation_p([t.mix_labels for t in base], [t.mix_labels for t in new])
    share_b, share_r = stats.shares(counts_b), stats.shares(counts_r)
    movers: list[dict[str, Any]] = sorted(
        (
            {"label": k, "baseline": share_b.get(k, 0.0), "recent": share_r.get(k, 0.0)}
            | {"delta": share_r.get(k, 0.0) - share_b.get(k, 0.0)}
            for k in set(share_b) | set(share_r)
        ),
        key=lambda row: (-abs(row["delta"]), row["label"]),
    )
    esc_b = sum(t.outcome != "auto" for t in base)
    esc_r = sum(t.outcome != "auto" for t in new)
    rate_b, rate_r = stats.rate(esc_b, len(base)), stats.rate(esc_r, len(new))
    delta = abs(rate_r - rate_b) if rate_b is not None and rate_r is not None else None
    p_esc = stats.two_proportion_p(esc_b, len(base), esc_r, len(new))
    top = ", ".join(f"{row['label']} {row['delta'] * 100:+.0f} pts" for row in movers[:3])
    mix_detail = f"label mix moved by Jensen–Shannon distance {_num(distance)} (largest moves: {top or '–'})"
    mix = _alarm("label_shift", distance, m.max_label_shift, p_mix, mix_detail, len(base), len(new), m)
    esc_detail = f"escalation rate {_num(rate_b)} → {_num(rate_r)}"
    esc = _alarm("escalation_rate", delta, m.max_escalation_delta, p_esc, esc_detail, len(base), len(new), m)
    return [mix, esc], {"label_distance": distance, "label_movers": movers, "escalation": [rate_b, rate_r]}


def _alarm(
    name: str,
    value: float | None,
    bound: float,
    p_value: float | None,
    detail: str,
    baseline_n: int,
    recent_n: int,
    m: MonitorSettings,
) -> stats.Alarm:
    status = stats.alarm_status(
        value,
        bound=bound,
        p_value=p_value,
        alpha=m.alarm_p,
        baseline_n=baseline_n,
        recent_n=recent_n,
        min_queries=m.min_queries,
    )
    if status == "insufficient_data":
        detail = f"needs {m.min_queries} queries in each window, has {baseline_n} (baseline) and {recent_n} (recent)"
    return stats.Alarm(name, status, value, bound, p_value, baseline_n, recent_n, detail)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def build_report(
    rows: Sequence[Decision], *, since: float, until: float, monitor: MonitorSettings, tz: tzinfo
) -> dict[str, Any]:
    """Every number the report shows, from the rows of [since, until) (times in the output are in `tz`)."""
    if until <= since:
        raise InputError("the report's range is empty: --since must be before now")
    turns, orphans = group_turns(rows)
    if not turns and not orphans:
        raise InputError(f"the decision log has no queries since {_iso(since, tz)}")
    width = stats.bucket_width(until - since)
    offset = (datetime.fromtimestamp(until, tz).utcoffset() or timedelta(0)).total_seconds()
    starts = stats.bucket_starts(since, until, width=width, offset=offset)
    by_bucket: list[list[Turn]] = [[] for _ in starts]
    resumes = [0 for _ in starts]
    for turn in turns:
        by_bucket[stats.bucket_index(turn.ask.created, first=starts[0], width=width)].append(turn)
    for row in rows:
        if row.kind == "resume":
            resumes[stats.bucket_index(row.created, first=starts[0], width=width)] += 1
    recent_since = until - min(monitor.recent_hours * 3600, (until - since) / 2)
    baseline = [t for t in turns if t.ask.created < recent_since]
    recent = [t for t in turns if t.ask.created >= recent_since]
    alarms, drift = _alarms(baseline, recent, monitor)
    totals = _label_counts(turns)
    top = [label for label, _ in totals.most_common(TOP_LABELS)]
    buckets = []
    for start, members, resumed in zip(starts, by_bucket, resumes, strict=True):
        mix = stats.shares(_label_counts(members))
        shown = {label: mix.get(label, 0.0) for label in top}
        if len(totals) > len(top):
            shown["other"] = sum(v for k, v in mix.items() if k not in top)
        buckets.append(
            {"start": _iso(start, tz), "ts": start, "resumes": resumed}
            | _rates(members, monitor.low_confidence)
            | {"label_shares": shown if mix else {}}
        )
    slow = stats.slowest(rows, key=lambda r: r.latency_ms, n=monitor.slowest)
    return {
        "range": {
            "since": _iso(since, tz),
            "until": _iso(until, tz),
            "since_ts": since,
            "until_ts": until,
            "bucket_seconds": width,
            "recent_since": _iso(recent_since, tz),
            "recent_since_ts": recent_since,
        },
        "totals": _rates(turns, monitor.low_confidence)
        | {
            "runs": len(rows),
            "resumes": sum(r.kind == "resume" for r in rows),
            "reviews_resolved": sum(r.kind == "resume" and r.label_source == "human" for r in rows),
            "pending_reviews": sum(turn.final.pending_review for turn in turns),
        },
        "buckets": buckets,
        "windows": {
            "baseline": {"since": _iso(since, tz), "until": _iso(recent_since, tz)}
            | {"escalation_rate": drift["escalation"][0], "label_shares": stats.shares(_label_counts(baseline))},
            "recent": {"since": _iso(recent_since, tz), "until": _iso(until, tz)}
            | {"escalation_rate": drift["escalation"][1], "label_shares": stats.shares(_label_counts(recent))},
            "label_distance": drift["label_distance"],
            "label_movers": drift["label_movers"],
        },
        "alarms": [asdict(alarm) for alarm in alarms],
        "slowest": [_slow_row(row, tz) for row in slow],
        "settings": monitor.model_dump(),
    }


def _slow_row(row: Decision, tz: tzinfo) -> dict[str, Any]:
    node = max(row.node_ms, key=row.node_ms.get) if row.node_ms else None  # type: ignore[arg-type]
    return {
        "time": _iso(row.created, tz),
        "latency_ms": row.latency_ms,
        "slowest_node": node,
        "node_ms": row.node_ms,
        "kind": row.kind,
        "query": row.query,
        "labels": row.labels,
        "decision": row.decision,
        "route": row.route,
        "thread_id": row.thread_id,
        "run_id": row.run_id,
        "error": row.error,
    }


def write_report(
    settings: Settings, *, since: str, out: Path | None, now: float | None = None, tz: tzinfo | None = None
) -> dict[str, Any]:
    """`labelgate report`: read the decision log since `since` (7d, 24h, 30m, an ISO date), compute the report,
    write the HTML to `out` (when given) and return the numbers."""
    from app.ops.monitor.page import report_html

    now = time.time() if now is None else now
    zone = tz or datetime.now().astimezone().tzinfo or UTC
    start = stats.parse_since(since, now=now, tz=zone)
    store = DecisionLog(settings.decision_log_db_url, create=False)
    try:
        rows = store.rows(since=start, until=now)
    finally:
        store.close()
    report = build_report(rows, since=start, until=now, monitor=settings.monitor, tz=zone)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report_html(report), encoding="utf-8")
        report["html"] = str(out)
    return report
