"""The `data audit` report: one self-contained HTML page (no script, no network) with the flagged rows as tables."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

MAX_ROWS = 500  # per table: CLINC150 can flag thousands; the JSON has them all


def _e(value: Any) -> str:
    if isinstance(value, list | tuple):
        return html.escape(" + ".join(str(v) for v in value))
    return html.escape(str(value))


def _where(ref: Mapping[str, Any]) -> str:
    return _e(f"{ref['split']}:{ref['line']}" + (f" ({ref['id']})" if "id" in ref else ""))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], total: int) -> str:
    more = f"<p>… and {total - len(rows)} more in the JSON.</p>" if total > len(rows) else ""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>{more}" if rows else "<p>none</p>"


def _issues(issues: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            _where(x),
            _e(x["text"]),
            _e(x["labels"]),
            f"<b>{_e(x['suggested'])}</b>",
            f"{x['quality']:.3f}",
            _e(", ".join(f"{k} {v:.2f}" for k, v in x["probs"].items())),
        ]
        for x in issues[:MAX_ROWS]
    ]
    head = ["where", "text", "given labels", "cross-validated voters say", "label quality", "p (out of fold)"]
    return _table(head, rows, len(issues))


def _duplicates(dups: Mapping[str, Any]) -> str:
    flag = '<span class="bad">conflicting labels</span>'
    exact = [
        [
            "<br>".join(_where(r) for r in g["rows"]),
            "<br>".join(f"{_e(r['text'])} → {_e(r['labels'])}" for r in g["rows"]),
            ("cross-split" if g["cross_split"] else "within a split") + (f"; {flag}" if g["conflicting"] else ""),
        ]
        for g in dups["exact"][:MAX_ROWS]
    ]
    near = [
        [
            f"{_where(p['a'])}<br>{_where(p['b'])}",
            f"{_e(p['a']['text'])} → {_e(p['a']['labels'])}<br>{_e(p['b']['text'])} → {_e(p['b']['labels'])}",
            f"{p['cosine']:.3f}" + (f"; {flag}" if p["conflicting"] else ""),
        ]
        for p in dups["near"][:MAX_ROWS]
    ]
    return (
        "<h3>Same normalised text</h3>"
        + _table(["where", "text → labels", "kind"], exact, len(dups["exact"]))
        + f"<h3>Across splits, embedding cosine ≥ {dups['threshold']}</h3>"
        + _table(["where", "text → labels", "cosine"], near, len(dups["near"]))
    )


def _rare(rare: Mapping[str, Any]) -> str:
    counts: Mapping[str, Mapping[str, int]] = rare["counts"]
    splits = list(next(iter(counts.values()), {}))
    flagged = [x for x in counts if x in rare["rare"] or x in rare["absent"]]
    rows = [
        [_e(label), *(str(counts[label][s]) for s in splits), _e(_why(label, rare))] for label in flagged[:MAX_ROWS]
    ]
    return _table(["label", *splits, "why"], rows, len(flagged))


def _why(label: str, rare: Mapping[str, Any]) -> str:
    parts = [f"fewer than {rare['min_train']} train rows"] if label in rare["rare"] else []
    if label in rare["absent"]:
        parts.append("absent from " + ", ".join(rare["absent"][label]))
    return "; ".join(parts)


def audit_html(result: Mapping[str, Any]) -> str:
    """The report of `run_audit`'s JSON."""
    summary = html.escape(json.dumps(result["summary"], ensure_ascii=False))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>labelgate data audit</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}.bad{{color:#d62728}}</style>
</head><body>
<h1>labelgate data audit</h1>
<p>dataset <code>{_e(result["dataset"])}</code> ({_e(result["format"])}): rows {_e(json.dumps(result["rows"]))},
{result["labels"]} labels, {"multi" if result["multi_label"] else "single"}-label; {result["folds"]}-fold out-of-fold
probabilities of voters {_e(json.dumps(result["voters"]))}; exact-set accuracy out of fold
{_e(json.dumps(result["cv_exact_accuracy"]))}; wall {result["seconds"]["wall"]} s.</p>
<p>Summary: <code>{summary}</code></p>
<h2>Likely label issues (confident learning)</h2>{_issues(result["label_issues"])}
<h2>Duplicates</h2>{_duplicates(result["duplicates"])}
<h2>Rare or unmeasurable labels</h2>{_rare(result["rare_labels"])}
</body></html>
"""
