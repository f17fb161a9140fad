"""The HTML of `labelgate report`: one self-contained page (inline SVG, no scripts, no network). Every string from
the log is escaped: queries are customer text, and hostile markup must show as text."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.ops.eval.report import COLORS, line_chart, nice_top, stacked_bars

CHART = {"width": 600, "height": 270}
ALARM_NAMES = {"label_shift": "Label mix shift", "escalation_rate": "Escalation rate"}
STATUS = {"alarm": ("ALARM", "alarm"), "ok": ("ok", "ok"), "insufficient_data": ("not enough data", "na")}
STYLE = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:24px auto;max-width:1240px;color:#222}
h1{margin:0 0 4px}h2{margin:28px 0 8px;font-size:18px}.muted{color:#666}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.alarm-list{display:flex;gap:12px;flex-wrap:wrap}
.alarm-box{border-radius:6px;padding:10px 14px;flex:1 1 480px;border:2px solid}
.alarm{border-color:#d62728;background:#fdecea}.ok{border-color:#2ca02c;background:#edf7ed}
.na{border-color:#999;background:#f4f4f4}
.badge{font-weight:bold;padding:1px 8px;border-radius:4px;color:#fff;margin-right:6px}
.alarm .badge{background:#d62728}.ok .badge{background:#2ca02c}.na .badge{background:#888}
.charts{display:grid;grid-template-columns:repeat(2,600px);gap:16px 24px}
figure{margin:0}figcaption{font-weight:bold;margin-bottom:2px}.charts svg{display:block;margin-top:-26px}
.legend{font-size:12px;margin:0 0 2px 40px;min-height:17px}.legend span{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;white-space:nowrap}
td.query{max-width:420px;word-break:break-all}.up{color:#d62728}.down{color:#1f77b4}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _when(iso: str) -> str:
    """An ISO time as the page shows it (the zone is named once, in the header)."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span><i style="background:{COLORS[i % len(COLORS)]}"></i>{_e(name)}</span>' for i, name in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def _tick_format(bucket_seconds: float) -> str:
    return "%m-%d" if bucket_seconds >= 86400 else "%m-%d %H:%M" if bucket_seconds >= 3600 else "%H:%M"


def _cards(totals: Mapping[str, Any]) -> str:
    cards = [
        ("queries", f"{totals['queries']:,}"),
        ("decided by the voters", _pct(totals["auto_rate"])),
        ("escalated", _pct(totals["escalation_rate"])),
        ("sent to a person", _pct(totals["review_rate"])),
        ("low confidence", _pct(totals["low_confidence_rate"])),
        ("voters disagree", _pct(totals["disagreement_rate"])),
        ("errors", f"{totals['error']:,}"),
        ("reviews pending", f"{totals['pending_reviews']:,}"),
        ("reviews resolved", f"{totals['reviews_resolved']:,}"),
        ("latency p50 / p95", f"{_ms(totals['latency_p50_ms'])} / {_ms(totals['latency_p95_ms'])}"),
    ]
    body = "".join(f'<div class="card"><b>{_e(value)}</b><span>{_e(name)}</span></div>' for name, value in cards)
    return f'<div class="cards">{body}</div>'


def _alarms(alarms: Sequence[Mapping[str, Any]], windows: Mapping[str, Any]) -> str:
    boxes = []
    for alarm in alarms:
        badge, css = STATUS[alarm["status"]]
        value = "–" if alarm["value"] is None else f"{alarm['value']:.3f}"
        p = "–" if alarm["p_value"] is None else f"{alarm['p_value']:.3g}"
        boxes.append(
            f'<div class="alarm-box {css}" data-alarm="{_e(alarm["name"])}" data-status="{_e(alarm["status"])}">'
            f'<span class="badge">{_e(badge)}</span><b>{_e(ALARM_NAMES.get(alarm["name"], alarm["name"]))}</b>'
            f"<div>{_e(alarm['detail'])}</div>"
            f'<div class="muted">moved {value} (bound {alarm["bound"]:.3f}), p = {p}; '
            f"queries: baseline {alarm['baseline_n']}, recent {alarm['recent_n']}</div></div>"
        )
    base, recent = windows["baseline"], windows["recent"]
    note = (
        f'<p class="muted">Baseline {_e(_when(base["since"]))} – {_e(_when(base["until"]))}; recent '
        f"{_e(_when(recent['since']))} – {_e(_when(recent['until']))} (shaded in the charts). An alarm needs both "
        "windows to hold enough queries, a change past its bound, and a change that chance alone rarely makes "
        "(permutation test for the label mix, two-proportion z-test for the escalation rate).</p>"
    )
    return f'<div class="alarm-list">{"".join(boxes)}</div>{note}'


def _charts(report: Mapping[str, Any]) -> str:
    buckets, rng = report["buckets"], report["range"]
    width = rng["bucket_seconds"]
    first = buckets[0]["ts"]
    fmt = _tick_format(width)
    labels = [datetime.fromisoformat(b["start"]).strftime(fmt) for b in buckets]
    n = len(buckets)
    band = ((rng["recent_since_ts"] - first) / width, n)
    common: dict[str, Any] = {**CHART, "band": band, "band_label": "recent window", "legend": False}
    ticks = [(i + 0.5, labels[i]) for i in range(0, n, max(1, -(-n // 8)))]
    lines: dict[str, Any] = {**common, "xlabel": "time", "xlim": (0, n), "xticks": ticks}

    def series(key: str) -> list[tuple[float, float | None]]:
        return [(i + 0.5, b[key]) for i, b in enumerate(buckets)]

    outcomes = {
        "auto (voters)": [b["auto"] for b in buckets],
        "confirmed (LLM + rules / voter)": [b["confirmed"] for b in buckets],
        "to a person": [b["review"] for b in buckets],
        "error": [b["error"] for b in buckets],
    }
    volume = stacked_bars(
        outcomes,
        xlabels=labels,
        xlabel="time",
        ylabel="queries",
        **common,
    )
    rates = {"auto": series("auto_rate"), "escalated": series("escalation_rate"), "to a person": series("review_rate")}
    outcome = line_chart(
        rates,
        ylabel="share of queries",
        yfmt="{:.0%}",
        **lines,
    )
    low = report["settings"]["low_confidence"]
    flags = {f"confidence < {low:g}": series("low_confidence_rate"), "voters disagree": series("disagreement_rate")}
    quality = line_chart(
        flags,
        ylabel="share of queries",
        yfmt="{:.0%}",
        **lines,
    )
    names = list(dict.fromkeys(k for b in buckets for k in b["label_shares"]))
    mix = stacked_bars(
        {name: [b["label_shares"].get(name, 0.0) for b in buckets] for name in names},
        xlabels=labels,
        xlabel="time",
        ylabel="share of labels",
        ylim=(0.0, 1.0),
        yfmt="{:.0%}",
        **common,
    )
    top = nice_top(max([b["latency_p95_ms"] or 0.0 for b in buckets] + [1.0]))
    percentiles = {"p50": series("latency_p50_ms"), "p95": series("latency_p95_ms")}
    latency = line_chart(percentiles, ylabel="ms", ylim=(0.0, top), yfmt="{:.0f}", **lines)
    voters = sorted({name for b in buckets for name in b["voter_top_p"]})
    top_p = {f"voter {name}": [(i + 0.5, b["voter_top_p"].get(name)) for i, b in enumerate(buckets)] for name in voters}
    confidence = line_chart(top_p, ylabel="mean top-label probability", **lines)
    figures = [
        ("Volume by outcome", list(outcomes), volume),
        ("Auto, escalated and reviewed rates", list(rates), outcome),
        ("Low-confidence and disagreement rates", list(flags), quality),
        ("Label mix", names, mix),
        ("Voter confidence", list(top_p), confidence),
        ("Latency of first runs", list(percentiles), latency),
    ]
    body = "".join(
        f"<figure><figcaption>{_e(title)}</figcaption>{_legend(keys)}{svg}</figure>" for title, keys, svg in figures
    )
    return f'<div class="charts">{body}</div>'


def _movers(windows: Mapping[str, Any]) -> str:
    rows = []
    for row in windows["label_movers"]:
        css = "up" if row["delta"] > 0 else "down" if row["delta"] < 0 else ""
        rows.append(
            f"<tr><td>{_e(row['label'])}</td><td class='num'>{_pct(row['baseline'])}</td>"
            f"<td class='num'>{_pct(row['recent'])}</td>"
            f"<td class='num {css}'>{row['delta'] * 100:+.1f} pts</td></tr>"
        )
    head = "<tr><th>label</th><th>baseline</th><th>recent</th><th>change</th></tr>"
    return f'<table class="movers">{head}{"".join(rows)}</table>'


def _slowest(rows: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for row in rows:
        node = row["slowest_node"]
        where = f"{node} {row['node_ms'][node]:,.1f} ms" if node else "–"
        out.append(
            f"<tr><td class='num'>{_e(_when(row['time']))}</td><td class='num'>{_ms(row['latency_ms'])}</td>"
            f"<td>{_e(where)}</td><td>{_e(row['kind'])}</td><td class='query'>{_e(row['query'])}</td>"
            f"<td>{_e(', '.join(row['labels']) or '–')}</td><td>{_e(row['decision'] or '–')} / {_e(row['route'])}</td>"
            f"<td><code>{_e(row['thread_id'])}</code></td><td>{_e(row['error'] or '')}</td></tr>"
        )
    head = (
        "<tr><th>time</th><th>latency</th><th>slowest node</th><th>run</th><th>query</th><th>labels</th>"
        "<th>decision / route</th><th>thread</th><th>error</th></tr>"
    )
    return f'<table class="slowest">{head}{"".join(out)}</table>'


def report_html(report: Mapping[str, Any]) -> str:
    rng = report["range"]
    minutes = rng["bucket_seconds"] / 60
    zone = datetime.fromisoformat(rng["until"]).strftime("%z")
    zone = f"{zone[:3]}:{zone[3:]}" if zone else ""
    bucket = (
        f"{minutes / 1440:g} d" if minutes >= 1440 else f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"
    )
    totals = report["totals"]
    span = f"{_when(rng['since'])} – {_when(rng['until'])} (UTC{zone})"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>labelgate report</title>
<style>{STYLE}</style></head><body>
<h1>labelgate report</h1>
<p class="muted">{_e(span)} · buckets of {_e(bucket)} · {totals["runs"]:,} graph runs
({totals["resumes"]:,} resumes after review)</p>
{_cards(totals)}
<h2>Drift alarms</h2>{_alarms(report["alarms"], report["windows"])}
<h2>Over time</h2>{_charts(report)}
<h2>Label mix: baseline vs recent</h2>{_movers(report["windows"])}
<h2>Slowest runs</h2>{_slowest(report["slowest"])}
</body></html>
"""
