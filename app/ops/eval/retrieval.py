"""Retrieval datasets for `labelgate eval drift`: docs.jsonl {"id", "text", "category" or "labels", optional "title"}
and queries.jsonl {"id", "text", "category" or "labels", "relevant": [doc ids], optional "hard_negatives"} — or a
labelgate data dir (taxonomy.yaml, kb/docs.jsonl, kb/queries.jsonl, queries/ to train the voters on). Every row is
validated; an error names the file and line. With `doc_id_sep` (e.g. "#"), docs may be pre-cut chunks `<doc>#<n>` and
`relevant`/`hard_negatives` name their source documents: each names every chunk of that document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.data import Example
from app.core.errors import DataError
from app.core.fileio import iter_jsonl
from app.core.taxonomy import Label, Taxonomy
from app.ops.eval.datasets import Row, taxonomy_doc


@dataclass(frozen=True)
class RDoc:
    id: str
    text: str
    labels: tuple[str, ...]  # gold, expanded with parents
    title: str = ""


@dataclass(frozen=True)
class RQuery:
    id: str
    text: str
    labels: tuple[str, ...]  # gold, expanded with parents
    relevant: tuple[str, ...]
    hard_negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetrievalData:
    docs: list[RDoc]
    queries: list[RQuery]
    taxonomy: Taxonomy
    native: bool  # a labelgate data dir: voters train on its queries/ splits, not on held-out docs
    root: Path
    doc_id_sep: str | None = None  # chunks `<doc><sep><n>` are scored as their source document

    def doc_index(self) -> dict[str, int]:
        return {doc.id: i for i, doc in enumerate(self.docs)}

    def sources(self) -> list[str]:
        """Each doc's source document: its id, or with `doc_id_sep` the id up to the last separator."""
        return [source_of(doc.id, self.doc_id_sep) for doc in self.docs]


def source_of(doc_id: str, sep: str | None) -> str:
    """`<doc><sep><n>` -> `<doc>`; ids without the separator (or no separator) are their own document."""
    return doc_id.rsplit(sep, 1)[0] if sep and sep in doc_id else doc_id


def _string(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = row.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise DataError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _raw_labels(row: dict[str, Any], where: str) -> list[str]:
    if "labels" in row:
        labels = row["labels"]
    elif "category" in row:
        labels = [row["category"]]
    else:
        raise DataError(f"{where}: needs 'category' (a string) or 'labels' (a non-empty list of strings)")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise DataError(f"{where}: 'category' must be a non-empty string, 'labels' a non-empty list of strings")
    return [x.strip() for x in labels]


def _ids(
    row: dict[str, Any], key: str, where: str, known: dict[str, list[str]], *, required: bool, sep: str | None
) -> tuple[str, ...]:
    """The doc ids a query names (`known`: id -> the doc ids it stands for: itself, or a source's chunks)."""
    ids = row.get(key, None if required else [])
    if not isinstance(ids, list) or (required and not ids) or not all(isinstance(x, str) for x in ids):
        need = "a non-empty list of doc ids" if required else "a list of doc ids"
        raise DataError(f"{where}: {key!r} must be {need}")
    unknown = [x for x in ids if x not in known]
    if unknown:
        hint = ""
        if sep is None and any(k.startswith(f"{x}#") for x in unknown[:5] for k in known):
            hint = " (docs.jsonl has chunks '<doc>#<n>' of them: pass --doc-id-sep '#' to score chunks as documents)"
        raise DataError(f"{where}: {key} {unknown[:5]} are not ids in docs.jsonl{hint}")
    return tuple(dict.fromkeys(chunk for x in ids for chunk in known[x]))


def _read(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = [(f"{path}:{number}", row) for number, row in iter_jsonl(path)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _known(labels: list[str], taxonomy: Taxonomy, where: str) -> tuple[str, ...]:
    known, unknown = taxonomy.split_known(labels)
    if unknown:
        raise DataError(f"{where}: unknown labels {unknown} (taxonomy has {taxonomy.ids})")
    return tuple(taxonomy.expand(known))


def load_retrieval(src: Path, *, doc_id_sep: str | None = None) -> RetrievalData:
    """A public-format retrieval dir (taxonomy built from its categories) or a labelgate data dir (its taxonomy)."""
    if doc_id_sep is not None and not doc_id_sep:
        raise DataError("doc_id_sep must be a non-empty string")
    native = (src / "taxonomy.yaml").is_file() and (src / "kb").is_dir()
    base = src / "kb" if native else src
    if not src.is_dir():
        raise DataError(f"{src}: not a directory")
    for name in ("docs.jsonl", "queries.jsonl"):
        if not (base / name).is_file():
            raise DataError(f"{base}: missing {name} (a retrieval dataset needs docs.jsonl and queries.jsonl)")
    doc_rows, query_rows = _read(base / "docs.jsonl"), _read(base / "queries.jsonl")
    raw_doc = [_raw_labels(row, where) for where, row in doc_rows]
    raw_query = [_raw_labels(row, where) for where, row in query_rows]
    if native:
        taxonomy = Taxonomy.load(src / "taxonomy.yaml")
    else:
        rows: list[Row] = [("", labels, None) for labels in raw_doc + raw_query]
        taxonomy = Taxonomy(tuple(Label(entry["id"]) for entry in taxonomy_doc(rows, None)["labels"]))
    docs: list[RDoc] = []
    seen: dict[str, int] = {}
    for (where, row), labels in zip(doc_rows, raw_doc, strict=True):
        doc_id = _string(row, "id", where)
        if doc_id in seen:
            raise DataError(f"{where}: duplicate doc id {doc_id!r}")
        seen[doc_id] = len(docs)
        title = _string(row, "title", where, required=False)
        docs.append(RDoc(doc_id, _string(row, "text", where), _known(labels, taxonomy, where), title))
    known = {doc.id: [doc.id] for doc in docs}
    if doc_id_sep:
        by_source: dict[str, list[str]] = {}
        for doc in docs:
            by_source.setdefault(source_of(doc.id, doc_id_sep), []).append(doc.id)
        known = by_source | known  # a chunk id still names itself
    queries: list[RQuery] = []
    query_ids: set[str] = set()
    for (where, row), labels in zip(query_rows, raw_query, strict=True):
        query_id = _string(row, "id", where)
        if query_id in query_ids:
            raise DataError(f"{where}: duplicate query id {query_id!r}")
        query_ids.add(query_id)
        queries.append(
            RQuery(
                query_id,
                _string(row, "text", where),
                _known(labels, taxonomy, where),
                _ids(row, "relevant", where, known, required=True, sep=doc_id_sep),
                _ids(row, "hard_negatives", where, known, required=False, sep=doc_id_sep),
            )
        )
    return RetrievalData(docs, queries, taxonomy, native, src, doc_id_sep)


def doc_examples(docs: Sequence[RDoc]) -> list[Example]:
    """Docs as labelled training rows (the public datasets' voters learn the categories from held-out docs)."""
    return [Example(doc.text, doc.labels) for doc in docs]
