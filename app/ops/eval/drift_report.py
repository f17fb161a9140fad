"""The `eval drift` report: each retrieval metric against KB growth for every method, the tables, labels, tuning."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.ops.eval.report import _fmt, line_chart

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
