"""Self-contained HTML reports (inline SVG, no plotting library, no network): the chart helpers, and the report of
`eval classify`'s JSON (`labelgate report` draws with the same helpers)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

W, H, PAD = 420, 300, 44
COLORS = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
)  # fmt: skip


@dataclass(frozen=True)
class Frame:
    """A chart's plotting area: the data ranges mapped onto a width × height SVG inside PAD margins."""

    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    width: int = W
    height: int = H

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return PAD + (v - lo) / ((hi - lo) or 1.0) * (self.width - 2 * PAD)

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.height - PAD - (v - lo) / ((hi - lo) or 1.0) * (self.height - 2 * PAD)


def _x(v: float, lo: float, hi: float) -> float:
    return Frame(xlim=(lo, hi)).x(v)


def _y(v: float, lo: float, hi: float) -> float:
    return Frame(ylim=(lo, hi)).y(v)


def _axes(
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float],
    *,
    frame: Frame | None = None,
    xticks: Sequence[tuple[float, str]] | None = None,
    yfmt: str = "{:.2f}",
) -> list[str]:
    f = frame or Frame(ylim=ylim)
    (xlo, xhi), (lo, hi) = f.xlim, f.ylim
    w, h = f.width, f.height
    parts = [
        f'<line x1="{PAD}" y1="{h - PAD}" x2="{w - PAD}" y2="{h - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{h - PAD}" stroke="#333"/>',
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="12" y="{h / 2}" transform="rotate(-90 12 {h / 2})" text-anchor="middle">'
        f"{html.escape(ylabel)}</text>",
    ]
    ticks = (
        xticks
        if xticks is not None
        else [(xlo + (xhi - xlo) * i / 4, f"{xlo + (xhi - xlo) * i / 4:.2f}") for i in range(5)]
    )
    for fx, label in ticks:
        parts.append(f'<text x="{f.x(fx):.1f}" y="{h - PAD + 14}" text-anchor="middle">{html.escape(label)}</text>')
    for i in range(5):
        fy = lo + (hi - lo) * i / 4
        parts.append(f'<text x="{PAD - 4}" y="{f.y(fy) + 4:.1f}" text-anchor="end">{yfmt.format(fy)}</text>')
    return parts


def nice_top(value: float) -> float:
    """The smallest axis top ≥ value whose quarter ticks are round numbers (33 → 40, 2155 → 2400)."""
    if value <= 0:
        return 1.0
    step = value / 4
    magnitude = 10 ** math.floor(math.log10(step))
    return 4 * next(m * magnitude for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * magnitude >= step * (1 - 1e-9))


def _legend(names: Sequence[str], frame: Frame) -> list[str]:
    return [
        f'<text x="{frame.width - PAD - 4}" y="{PAD + 14 * i}" text-anchor="end" fill="{COLORS[i % len(COLORS)]}">'
        f"{html.escape(name)}</text>"
        for i, name in enumerate(names)
    ]


def _band(frame: Frame, band: tuple[float, float] | None, label: str) -> list[str]:
    """A shaded x range (e.g. the recent window) behind the data."""
    if band is None:
        return []
    x0, x1 = frame.x(band[0]), frame.x(band[1])
    return [
        f'<rect x="{x0:.1f}" y="{PAD}" width="{max(x1 - x0, 0):.1f}" height="{frame.height - 2 * PAD}" fill="#fff3c4">'
        f"<title>{html.escape(label)}</title></rect>"
    ]


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    *,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] = (0, 1),
    xlim: tuple[float, float] = (0, 1),
    xticks: Sequence[tuple[float, str]] | None = None,
    width: int = W,
    height: int = H,
    yfmt: str = "{:.2f}",
    band: tuple[float, float] | None = None,
    band_label: str = "",
    legend: bool = True,
) -> str:
    """Lines over x in xlim ([0, 1] by default), one per named series, with a legend; a None y leaves a gap (a lone
    point between gaps is a dot). `band` is a shaded x range; legend=False leaves the legend to the page (series
    take COLORS in order)."""
    lo, hi = ylim
    frame = Frame(xlim=xlim, ylim=ylim, width=width, height=height)
    parts = _band(frame, band, band_label) + _axes(xlabel, ylabel, ylim, frame=frame, xticks=xticks, yfmt=yfmt)
    for i, points in enumerate(series.values()):
        color = COLORS[i % len(COLORS)]
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in points:
            if y is None:
                segments.append([])
            else:
                segments[-1].append((frame.x(x), frame.y(min(max(y, lo), hi))))
        for segment in segments:
            if len(segment) == 1:
                parts.append(f'<circle cx="{segment[0][0]:.1f}" cy="{segment[0][1]:.1f}" r="2.5" fill="{color}"/>')
            elif segment:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
    return _svg(parts + (_legend(list(series), frame) if legend else []), width=width, height=height)


def stacked_bars(
    stacks: Mapping[str, Sequence[float]],
    *,
    xlabels: Sequence[str],
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    width: int = W,
    height: int = H,
    yfmt: str = "{:.0f}",
    band: tuple[float, float] | None = None,
    band_label: str = "",
    legend: bool = True,
) -> str:
    """One bar per x label (bar i spans x in [i, i + 1]), the named series stacked bottom up, with a legend and an
    optional shaded x range; at most ~8 x labels are written, evenly spaced."""
    n = len(xlabels)
    totals = [sum(values[i] for values in stacks.values()) for i in range(n)]
    top = ylim or (0.0, nice_top(max([*totals, 1.0])))
    frame = Frame(xlim=(0, max(n, 1)), ylim=top, width=width, height=height)
    step = max(1, -(-n // 8))
    ticks = [(i + 0.5, xlabels[i]) for i in range(0, n, step)]
    parts = _band(frame, band, band_label) + _axes(xlabel, ylabel, top, frame=frame, xticks=ticks, yfmt=yfmt)
    for i in range(n):
        base = 0.0
        for j, (name, values) in enumerate(stacks.items()):
            value = values[i]
            if value <= 0:
                continue
            y0, y1 = frame.y(min(base + value, top[1])), frame.y(min(base, top[1]))
            x0, x1 = frame.x(i + 0.1), frame.x(i + 0.9)
            parts.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{max(y1 - y0, 0):.1f}" '
                f'fill="{COLORS[j % len(COLORS)]}"><title>{html.escape(xlabels[i])} {html.escape(name)}: '
                f"{value:g}</title></rect>"
            )
            base += value
    return _svg(parts + (_legend(list(stacks), frame) if legend else []), width=width, height=height)


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


def _svg(parts: list[str], *, width: int = W, height: int = H) -> str:
    body = "".join(parts)
    style = 'font-size="11" font-family="sans-serif"'
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {style}>{body}</svg>'


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
