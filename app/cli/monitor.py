"""`labelgate report`: the decision log as an HTML report with drift alarms (and its numbers as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import print_json, run, settings


def report_command(
    since: Annotated[str, typer.Option(help="how far back: 7d, 24h, 30m, 2w or an ISO date/time")] = "7d",
    out: Annotated[Path, typer.Option(help="the HTML report")] = Path("report.html"),
    as_json: Annotated[
        bool, typer.Option("--json", help="print the numbers behind the plots, alarms included")
    ] = False,
) -> None:
    """Volume, auto/escalated/reviewed rates, low-confidence and disagreement rates, the label mix and its drift
    alarms, and the slowest queries, from the decision log."""
    from app.ops.monitor.report import write_report

    report: dict[str, Any] = run(lambda: write_report(settings(), since=since, out=out))
    if as_json:
        print_json(report)
        return
    totals = report["totals"]
    rate = {k: "–" if totals[k] is None else f"{totals[k] * 100:.1f} %" for k in ("auto_rate", "escalation_rate")}
    typer.echo(
        f"{report['range']['since']} – {report['range']['until']}: queries {totals['queries']}, "
        f"auto {rate['auto_rate']}, escalated {rate['escalation_rate']}, pending reviews {totals['pending_reviews']}"
    )
    for alarm in report["alarms"]:
        typer.echo(f"{alarm['name']}: {alarm['status']}  {alarm['detail']}")
    typer.echo(f"report: {out}")
