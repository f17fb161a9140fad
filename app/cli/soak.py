"""`labelgate soak` (the bounded reliability scripts of app/soak) and `labelgate serve` (the HTTP chat API)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import assistant as _assistant
from app.cli.common import comma_list as _comma_list
from app.cli.common import run as _run
from app.cli.common import settings as _settings


def _available(name: str) -> bool:
    from app.ops.soak import SCRIPTS

    try:
        return importlib.util.find_spec(SCRIPTS[name]) is not None
    except (ModuleNotFoundError, ValueError):  # a parent package missing; a module without a spec
        return False


def soak_command(
    only: Annotated[
        str | None, typer.Option(help="comma-separated scripts (default: all): durable,load,faults")
    ] = None,
    quick: Annotated[bool, typer.Option(help="small sizes (seconds to a minute each)")] = False,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    workdir: Annotated[Path | None, typer.Option(help="scratch directory (default: <home>/soak)")] = None,
) -> None:
    """Run the reliability soaks (durable reviews, load, faults); exit 1 when anything was lost, failed or leaked."""
    from app.ops.soak import SCRIPTS, run_scripts, summary_line, totals

    names = _comma_list(only) if only else list(SCRIPTS)
    unknown = [x for x in names if x not in SCRIPTS]
    if unknown or not names:
        typer.echo(
            f"error: unknown soak script {', '.join(unknown) or '(none)'}; one of {', '.join(SCRIPTS)}", err=True
        )
        raise typer.Exit(2)
    missing = [x for x in names if not _available(x)]
    if missing and only:
        typer.echo(f"error: soak script {', '.join(missing)} is not in this build ({SCRIPTS[missing[0]]})", err=True)
        raise typer.Exit(2)
    for name in missing:
        typer.echo(f"{name}: skipped ({SCRIPTS[name]} is not in this build)")
    s = _settings()
    results = _run(
        lambda: run_scripts(s, [x for x in names if x not in missing], workdir or s.home / "soak", quick=quick)
    )
    for result in results:
        bad = {k: v for k, v in result.counters.items() if v}
        typer.echo(f"{result.name}: {result.seconds}s  {'FAILED ' + str(bad) if bad else 'ok'}")
        typer.echo(json.dumps(result.figures, ensure_ascii=False, indent=2))
    line = summary_line(results)
    if out is not None:
        report = {"results": [r.to_dict() for r in results], "totals": totals(results), "summary": line}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    typer.echo(line)
    if any(totals(results).values()):
        raise typer.Exit(1)


def serve_command(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
) -> None:
    """Serve the HTTP chat API (POST /v1/ask, GET /v1/reviews, POST /v1/reviews/{thread}/resolve, GET /healthz)."""
    from app.core.extras import require
    from app.service.server import create_server
    from app.service.web import serve_token

    s = _settings()
    uvicorn = _run(lambda: require("uvicorn", "server"))
    token = _run(lambda: serve_token(s, host))  # a non-loopback address needs LABELGATE_REVIEW_TOKEN
    web = _run(lambda: create_server(_assistant(), token))
    typer.echo(f"chat API: http://{host}:{port}/v1/ask  (review routes: Authorization: Bearer {token})")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("soak")(soak_command)
    app.command("serve")(serve_command)
