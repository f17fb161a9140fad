"""What every CLI command shares: settings from the global options, error → exit 2, JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from app.core.config import Settings, load_settings
from app.core.errors import InputError, LabelgateError

T = TypeVar("T")
STATE: dict[str, Any] = {}


def settings() -> Settings:
    return load_settings(STATE.get("config"))


def run(fn: Callable[[], T]) -> T:
    """Call fn; a LabelgateError becomes `error: ...` on stderr and exit code 2."""
    try:
        return fn()
    except LabelgateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def comma_list(text: str) -> list[str]:
    """The items of a comma-separated option (a full-width '，' counts too), stripped, empty ones dropped."""
    return [item.strip() for item in text.replace("，", ",").split(",") if item.strip()]


def option_pairs(items: list[str]) -> dict[str, Any]:
    """`--option NAME=VALUE` pairs as the mapping graph/options.py validates: VALUE is read as JSON where it parses
    (5, 0.3, false), else as text (before_answer)."""
    options: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--option takes NAME=VALUE (e.g. top_k=5), not {item!r}")
        try:
            options[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[name.strip()] = raw.strip()
    return options


def print_json(value: Any, out: Path | None = None) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def assistant() -> Any:
    """The Assistant of one command; its checkpointer closes when the command ends."""
    import click

    from app.service.api import Assistant

    built = Assistant.from_settings(settings())
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(built.close)
    return built
