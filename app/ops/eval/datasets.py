"""Public labelled datasets as labelgate data dirs: any folder with train.jsonl, optional dev.jsonl or val.jsonl (else a
stratified slice of train) and test.jsonl; rows {"text", "label"} or {"text", "labels": [...]}, optional "domain" as
the coarse parent. The result has taxonomy.yaml + queries/{train,dev,test}.jsonl, so training and evaluation run on it
unchanged."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import DataError
from app.core.fileio import iter_jsonl, write_jsonl

Row = tuple[str, list[str], str | None]  # text, labels, domain


def read_rows(path: Path) -> list[Row]:
    """Validated rows of one split file; errors name the file and line."""
    rows: list[Row] = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: 'text' must be a non-empty string")
        labels = row.get("labels", [row["label"]] if "label" in row else None)
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
            raise DataError(f"{where}: needs 'label' (a string) or 'labels' (a non-empty list of strings)")
        domain = row.get("domain")
        if domain is not None and (not isinstance(domain, str) or not domain.strip()):
            raise DataError(f"{where}: 'domain' must be a non-empty string when given")
        rows.append((text.strip(), [x.strip() for x in labels], domain.strip() if domain else None))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def split_files(src: Path) -> dict[str, Path | None]:
    """train/dev/test files of a dataset dir; dev may be missing (None)."""
    if not src.is_dir():
        raise DataError(f"{src}: not a directory")
    known = {"train.jsonl", "dev.jsonl", "val.jsonl", "test.jsonl"}
    strays = sorted(p.name for p in src.glob("*.jsonl") if p.name not in known)
    if strays:
        raise DataError(
            f"{src}: unknown split files {strays} (expected train.jsonl, dev.jsonl or val.jsonl, test.jsonl)"
        )
    files: dict[str, Path | None] = {name: src / f"{name}.jsonl" for name in ("train", "test")}
    for name, path in files.items():
        if path is None or not path.is_file():
            raise DataError(f"{src}: missing {name}.jsonl")
    dev = next((src / n for n in ("dev.jsonl", "val.jsonl") if (src / n).is_file()), None)
    return files | {"dev": dev}


def stratified_take(rows: list[Row], n: int | None, seed: int) -> tuple[list[Row], list[Row]]:
    """(about n rows with every label's share kept, the rest); n None = (all, [])."""
    if n is None or n >= len(rows):
        return list(rows), []
    by_label: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_label[row[1][0]].append(row)
    rng = random.Random(seed)
    taken: list[Row] = []
    rest: list[Row] = []
    for group in by_label.values():
        rng.shuffle(group)
        k = max(1, round(len(group) * n / len(rows)))
        taken += group[:k]
        rest += group[k:]
    rng.shuffle(taken)
    return taken, rest


def taxonomy_doc(rows: list[Row], oos_label: str | None) -> dict[str, Any]:
    """Coarse labels = domains (or every label when rows have no domain); fine labels hang under their domain."""
    parents: dict[str, str | None] = {}
    for _, labels, domain in rows:
        for label in labels:
            parent = domain if domain and domain != label else None
            if parents.setdefault(label, parent) != parent:
                raise DataError(f"label {label!r} occurs under domains {parents[label]!r} and {parent!r}")
    domains = sorted({p for p in parents.values() if p} - set(parents))
    clash = sorted({p for p in parents.values() if p} & {x for x, p in parents.items() if p})
    if clash:
        raise DataError(f"{clash} are both domains and labels under a domain")
    entries = [{"id": d} for d in domains] + [
        {"id": x} | ({"parent": p} if p else {}) for x, p in sorted(parents.items())
    ]
    doc: dict[str, Any] = {"version": 1, "labels": entries}
    if oos_label is not None:
        if oos_label not in parents and oos_label not in domains:
            raise DataError(f"oos label {oos_label!r} does not occur in the data")
        doc["oos_label"] = oos_label
    return doc


def prepare(
    src: Path, out: Path, *, max_train: int | None = None, oos_label: str | None = None, seed: int = 13
) -> Path:
    """Write `src` as a labelgate data dir at `out` (train capped at about `max_train` rows, stratified)."""
    files = split_files(src)
    train = read_rows(files["train"])  # type: ignore[arg-type]
    test = read_rows(files["test"])  # type: ignore[arg-type]
    if files["dev"] is not None:
        dev = read_rows(files["dev"])
    else:
        dev, train = stratified_take(train, max(1, len(train) // 7), seed)
    train, _ = stratified_take(train, max_train, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "taxonomy.yaml").write_text(
        yaml.safe_dump(taxonomy_doc(train + dev + test, oos_label), allow_unicode=True, sort_keys=False), "utf-8"
    )
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        write_jsonl(
            out / "queries" / f"{name}.jsonl",
            [{"text": t, "labels": labels + ([d] if d and d not in labels else [])} for t, labels, d in rows],
        )
    return out
