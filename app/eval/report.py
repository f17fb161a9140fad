"""A self-contained HTML report (inline SVG, no plotting library, no network) of an evaluation's JSON."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

W, H, PAD = 420, 300, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _x(v: float, lo: float, hi: float) -> float:
    return PAD + (v - lo) / ((hi - lo) or 1.0) * (W - 2 * PAD)


def _y(v: float, lo: float, hi: float) -> float:
    return H - PAD - (v - lo) / ((hi - lo) or 1.0) * (H - 2 * PAD)


def _axes(
    xlabel: str, ylabel: str, ylim: tuple[float, float], xticks: Sequence[tuple[float, str]] | None = None
) -> list[str]:
    lo, hi = ylim
    ticks = xticks if xticks is not None else [(i / 4, f"{i / 4:.2f}") for i in range(5)]
    parts = [
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">'
        f"{html.escape(ylabel)}</text>",
    ]
    for fx, name in ticks:
        parts.append(f'<text x="{_x(fx, 0, 1):.1f}" y="{H - PAD + 14}" text-anchor="middle">{html.escape(name)}</text>')
    for i in range(5):
        fy = lo + (hi - lo) * i / 4
        parts.append(f'<text x="{PAD - 4}" y="{_y(fy, lo, hi) + 4:.1f}" text-anchor="end">{fy:.2f}</text>')
    return parts


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] = (0, 1),
    xticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Lines over x in [0, 1], one per named series, with a legend (x ticks at quarters unless given)."""
    lo, hi = ylim
    parts = _axes(xlabel, ylabel, ylim, xticks)
    for i, (name, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{_x(x, 0, 1):.1f},{_y(min(max(y, lo), hi), lo, hi):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<text x="{W - PAD - 4}" y="{PAD + 14 * i}" text-anchor="end" fill="{color}">{html.escape(name)}</text>'
        )
    return _svg(parts)


def reliability_chart(bins: Sequence[Mapping[str, float]]) -> str:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration."""
    parts = _axes("confidence", "accuracy", (0, 1))
    parts.append(
        f'<line x1="{_x(0, 0, 1)}" y1="{_y(0, 0, 1)}" x2="{_x(1, 0, 1)}" y2="{_y(1, 0, 1)}" '
        'stroke="#999" stroke-dasharray="4"/>'
    )
    for b in bins:
        x0, x1, top = _x(b["low"], 0, 1), _x(b["high"], 0, 1), _y(b["accuracy"], 0, 1)
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{top:.1f}" width="{x1 - x0 - 2:.1f}" height="{H - PAD - top:.1f}" '
            f'fill="{COLORS[0]}" opacity="0.7"><title>{b["count"]} rows, confidence {b["confidence"]:.3f}, '
            f"accuracy {b['accuracy']:.3f}</title></rect>"
        )
    return _svg(parts)


def _svg(parts: list[str]) -> str:
    body = "".join(parts)
    style = 'font-size="11" font-family="sans-serif"'
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" {style}>{body}</svg>'


def confusion_table(worst: Sequence[Mapping[str, Any]]) -> str:
    """Worst labels (rows) against what they were mistaken for (columns), shaded by count."""
    columns = list(dict.fromkeys(c for row in worst for c in row["confused_with"]))[:12]
    peak = max([n for row in worst for n in row["confused_with"].values()] or [1])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for row in worst:
        cells = "".join(
            f'<td style="background:rgba(214,39,40,{row["confused_with"].get(c, 0) / peak:.2f})">'
            f"{row['confused_with'].get(c, '')}</td>"
            for c in columns
        )
        rows.append(
            f"<tr><th>{html.escape(row['label'])}</th><td>{row['f1']:.3f}</td><td>{row['support']}</td>{cells}</tr>"
        )
    return f"<table><tr><th>gold label</th><th>F1</th><th>n</th>{head}</tr>{''.join(rows)}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


SUMMARY_KEYS = (
    "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "auto_coverage", "auto_precision", "agreement", "ece",
    "aurc", "train_seconds",
)  # fmt: skip


def classify_html(result: Mapping[str, Any]) -> str:
    """The `eval classify` report: summary table, risk–coverage, reliability diagrams, worst labels' confusions."""
    who = {"gate": result, **{f"voter {k}": v for k, v in result["voters"].items()}}
    head = "".join(f"<th>{html.escape(name)}</th>" for name in who)
    table = "".join(
        f"<tr><th>{key}</th>{''.join(f'<td>{_fmt(r.get(key))}</td>' for r in who.values())}</tr>"
        for key in SUMMARY_KEYS
    )
    curves = {name: r["risk_coverage"] for name, r in who.items()}
    top = max([risk for points in curves.values() for _, risk in points] or [0.0])
    risk = line_chart(
        curves, xlabel="coverage", ylabel="risk (error rate)", ylim=(0, max(0.05, -(-top // 0.05) * 0.05))
    )
    diagrams = "".join(
        f"<figure>{reliability_chart(r['reliability'])}<figcaption>{name}</figcaption></figure>"
        for name, r in who.items()
    )
    sel = result.get("selective", {})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>labelgate eval classify</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>labelgate eval classify</h1>
<p>dataset <code>{html.escape(str(result["dataset"]))}</code>, mode <b>{html.escape(result["mode"])}</b>, rows
{html.escape(str(result["rows"]))}, {result["labels"]} labels, OOS label {_fmt(result["oos_label"])},
wall {result["wall_seconds"]} s.</p>
<h2>Summary (test split)</h2><table><tr><th></th>{head}</tr>{table}</table>
<p>Gate with one confidence threshold chosen on dev for precision {_fmt(sel.get("target_precision"))}:
coverage {_fmt(sel.get("coverage"))}, precision {_fmt(sel.get("precision"))}.</p>
<h2>Risk–coverage</h2><figure>{risk}</figure>
<h2>Reliability diagrams</h2>{diagrams}
<h2>Worst labels and their confusions (gate)</h2>{confusion_table(result["worst_labels"])}
</body></html>
"""


DRIFT_METRICS = ("recall@{k}", "mrr", "ndcg@{k}", "purity@{k}")


def _table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], growth: Sequence[str], metric: str) -> str:
    head = "".join(f"<th>{html.escape(g)}×</th>" for g in growth)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>{''.join(f'<td>{_fmt(by[g].get(metric))}</td>' for g in growth)}</tr>"
        for name, by in rows.items()
    )
    return f"<table><tr><th>{html.escape(metric)}</th>{head}</tr>{body}</table>"


def drift_html(result: Mapping[str, Any]) -> str:
    """The `eval drift` report: each metric against growth for every method, the tables, labels and tuning."""
    growth, k = list(result["growth"]), result["k"]
    step = 1 / max(len(growth) - 1, 1)
    ticks = [(i * step, f"{g}×") for i, g in enumerate(growth)]
    charts, tables = [], []
    for template in DRIFT_METRICS:
        metric = template.format(k=k)
        series = {m: [(i * step, by[g][metric]) for i, g in enumerate(growth)] for m, by in result["results"].items()}
        low = min([y for points in series.values() for _, y in points] or [0.0])
        ylim = (max(0.0, (low * 20 // 1) / 20 - 0.05), 1.0)
        chart = line_chart(series, xlabel="growth (other-label docs × base KB)", ylabel=metric, ylim=ylim, xticks=ticks)
        charts.append(f"<figure>{chart}<figcaption>{html.escape(metric)}</figcaption></figure>")
        tables.append(_table(result["results"], growth, metric))
    ablation = result.get("tuning", {}).get("ablation", {})
    ablation_table = _table(ablation, growth, f"ndcg@{k}") + _table(ablation, growth, f"recall@{k}") if ablation else ""
    tuning = {key: v for key, v in result.get("tuning", {}).items() if key != "ablation"}
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>labelgate eval drift</title>
<style>body{{font-family:sans-serif;margin:2em}}
table{{border-collapse:collapse;margin:0 1em 1em 0;display:inline-table}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}figure{{display:inline-block;margin:0 1em 1em 0}}
pre{{background:#f6f6f6;padding:1em}}</style></head><body>
<h1>labelgate eval drift</h1>
<p>dataset <code>{html.escape(str(result["dataset"]))}</code>: {result["queries"]} queries ({result["queries_skipped"]}
skipped, split: {html.escape(result["split"])}), base KB {result["base_docs"]} docs per query, mean KB size
{html.escape(json.dumps(result["kb_docs"]))}; doc labels from <b>{html.escape(result["doc_label_source"])}</b>; rerank
weights {html.escape(json.dumps(result["rerank_weights"]))}; wall {result["wall_seconds"]} s.</p>
<h2>Metrics against growth</h2>{"".join(charts)}
<h2>Tables</h2>{"".join(tables)}
<h2>Drift summary</h2><pre>{html.escape(json.dumps(result["drift"], ensure_ascii=False, indent=1))}</pre>
<h2>Labels</h2><pre>{html.escape(json.dumps(result["labels"], ensure_ascii=False, indent=1))}</pre>
<h2>Rerank ablation (labelgate)</h2>{ablation_table}
<pre>{html.escape(json.dumps(tuning, ensure_ascii=False, indent=1))}</pre>
</body></html>
"""
