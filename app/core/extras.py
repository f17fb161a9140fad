"""Optional dependencies: a missing extra is an error that names the pip command to run."""

from __future__ import annotations

import importlib
from types import ModuleType

from app.core.errors import MissingExtraError


def require(module: str, extra: str, *, package: str | None = None) -> ModuleType:
    """Import `module` or raise MissingExtraError naming `pip install 'labelgate[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'labelgate[{extra}]'" + (f" (or pip install {package})" if package else "")
        raise MissingExtraError(f"{module} is not installed: run `{hint}`") from exc
