"""The demo domain's data files: labelled queries, knowledge-base docs, sample questions (validated on load)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import DataError
from app.core.fileio import iter_jsonl, yaml_entries
from app.core.taxonomy import Taxonomy


@dataclass(frozen=True)
class Example:
    """A labelled query; labels are expanded with their coarse parents."""

    text: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    labels: tuple[str, ...] = ()
    title: str = ""


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value.strip()


def _labels(row: dict[str, Any], taxonomy: Taxonomy, where: str, *, required: bool) -> tuple[str, ...]:
    if "labels" in row:
        raw = row["labels"]
    elif "label" in row:
        raw = [row["label"]]
    elif required:
        raise DataError(f"{where}: missing 'labels' (a list of label ids) or 'label'")
    else:
        return ()
    if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
        raise DataError(f"{where}: 'labels' must be a list of strings")
    if required and not raw:
        raise DataError(f"{where}: 'labels' is empty")
    known, unknown = taxonomy.split_known(label.strip() for label in raw)
    if unknown:
        raise DataError(f"{where}: unknown labels {unknown} (taxonomy has {taxonomy.ids})")
    return tuple(taxonomy.expand(known))


def load_examples(path: Path, taxonomy: Taxonomy) -> list[Example]:
    """Rows {"text", "labels": [...]} or {"text", "label"}."""
    examples = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        examples.append(Example(_text(row, "text", where), _labels(row, taxonomy, where, required=True)))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def iter_docs(path: Path, taxonomy: Taxonomy) -> Iterator[Doc]:
    """Rows {"id", "text", optional "title", optional "labels"}, read lazily; ids must be unique, the file non-empty."""
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        doc_id = _text(row, "id", where)
        if doc_id in seen:
            raise DataError(f"{where}: duplicate doc id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = number
        title = row.get("title", "")
        if not isinstance(title, str):
            raise DataError(f"{where}: 'title' must be a string")
        yield Doc(doc_id, _text(row, "text", where), _labels(row, taxonomy, where, required=False), title)
    if not seen:
        raise DataError(f"{path}: no docs")


def load_docs(path: Path, taxonomy: Taxonomy) -> list[Doc]:
    return list(iter_docs(path, taxonomy))


def count_docs(path: Path, taxonomy: Taxonomy) -> tuple[int, int]:
    """Validate a docs file without holding it: (docs, docs without labels). Raises on the first bad row."""
    docs = unlabelled = 0
    for doc in iter_docs(path, taxonomy):
        docs += 1
        unlabelled += not doc.labels
    return docs, unlabelled


def load_samples(path: Path) -> list[dict[str, str]]:
    """data/samples.yaml: {samples: [{text, note}]}."""
    samples = []
    for where, entry in yaml_entries(path, "samples", what="a mapping with 'text'"):
        samples.append({"text": _text(entry, "text", where), "note": str(entry.get("note", ""))})
    return samples


@dataclass(frozen=True)
class DemoData:
    """Paths of the demo domain inside a data directory."""

    root: Path

    @property
    def taxonomy(self) -> Path:
        return self.root / "taxonomy.yaml"

    @property
    def rules(self) -> Path:
        return self.root / "rules.yaml"

    @property
    def samples(self) -> Path:
        return self.root / "samples.yaml"

    @property
    def docs(self) -> Path:
        return self.root / "kb" / "docs.jsonl"

    def split(self, name: str) -> Path:
        return self.root / "queries" / f"{name}.jsonl"
