"""Reading data files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import DataError


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records each mapping's 1-based line under '__line__'."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    """Parse YAML; every mapping carries its line as '__line__'."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML: {exc}") from exc


def yaml_entries(path: Path, key: str, *, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, entry) for each mapping in the YAML file's top-level `key` list, `where` being `path:line`; a missing or
    empty list, or an entry that is not a mapping, raises DataError naming `what` an entry must be."""
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list) or not doc[key]:
        raise DataError(f"{path}: expected a mapping with a non-empty '{key}' list")
    for entry in doc[key]:
        where = f"{path}:{entry.get('__line__', '?') if isinstance(entry, dict) else '?'}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: each entry must be {what}")
        yield where, entry


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON or non-objects raise DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 ({exc.reason})") from exc
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
