"""The rows `labelgate train` learns from, calibrates on and scores on.

A data dir with query splits (`queries/train|dev|test.jsonl`) uses them, plus its labelled KB docs as training rows.
A new knowledge base usually has none: its docs carry their authors' labels and no query was labelled yet — the cold
start. Then the labelled docs are split (stratified by label, seeded) into train / dev / test docs: the voters learn
from the train docs and their query-like passages, and the thresholds, the scores and the measured reliability that
the rerank trusts the voters' labels by (`gate_reliability`) come from question-sized passages of docs they never
saw — how right their labels of a *question* are, without a labelled question.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.config import Settings
from app.core.data import DemoData, Doc, Example, iter_docs, load_examples
from app.core.errors import DataError
from app.core.taxonomy import Taxonomy
from app.core.textutil import QUERY_CHARS, chunk_text, passages

SPLITS = ("train", "dev", "test")
PASSAGES_PER_DOC = 2  # query-like passages a doc adds (a long document is many questions' answer)
COLD_SHARE = 0.15  # of the labelled docs, for dev and again for test, at the cold start
MIN_COLD_DOCS = 10  # fewer labelled docs cannot be split into something to learn from and something to measure on


@dataclass(frozen=True)
class Splits:
    train: list[Example]  # query rows (cold start: the train docs' query-like passages)
    dev: list[Example]
    test: list[Example]
    docs: list[Example]  # labelled KB chunks learnt as well
    cold_start: dict[str, Any] | None  # None: the data dir's own query splits; else how the docs were split


def doc_rows(docs: Iterable[Doc | Example], *, chunk_chars: int, limit: int, seed: int) -> list[Example]:
    """Labelled KB docs as training rows, chunked as the index chunks them (at most `limit`: a seeded uniform sample,
    drawn in one pass over any number of docs). They teach both voters the KB's own words, so docs added later
    without labels are labelled better at index time (demo, 4-fold cross-fitted: exact doc labels 0.30 → 0.52) and
    queries too (0.64 → 0.70)."""
    rng, seen = random.Random(seed), 0
    kept: list[Example] = []
    for doc in docs:
        for chunk in chunk_text(doc.text, chunk_chars) if doc.labels else []:
            if len(kept) < limit:
                kept.append(Example(chunk, doc.labels))
            elif (slot := rng.randrange(seen + 1)) < limit:
                kept[slot] = Example(chunk, doc.labels)
            seen += 1
    return kept


def query_like(
    docs: Sequence[Doc | Example], seed: int, per_doc: int = PASSAGES_PER_DOC, *, whole_short: bool = False
) -> list[Example]:
    """Up to `per_doc` seeded query-like passages of each doc (app/core/textutil.py passages), with the doc's labels.
    A doc that is one passage already (a short FAQ question) adds nothing to learn from (it is learnt as a doc), but
    with `whole_short` it is itself a query-like row: what calibration measures on."""
    rng = random.Random(seed)
    rows: list[Example] = []
    for doc in docs:
        text = doc.text.strip()
        if whole_short and len(text) <= QUERY_CHARS:
            rows.append(Example(text, doc.labels))
            continue
        parts = [p for p in passages(doc.text) if p != text]
        keep = sorted(rng.sample(range(len(parts)), min(per_doc, len(parts))))
        rows += [Example(parts[i], doc.labels) for i in keep]
    return rows


def split_docs(docs: Sequence[Doc], share: float, seed: int) -> tuple[list[Doc], list[Doc], list[Doc]]:
    """(train, dev, test) docs: of each label's docs (by their first label) a seeded `share` for dev and as many for
    test, at least one each where the label has three docs or more; every doc lands in exactly one part."""
    by_label: dict[str, list[Doc]] = defaultdict(list)
    for doc in docs:
        by_label[doc.labels[0]].append(doc)
    rng = random.Random(seed)
    train: list[Doc] = []
    dev: list[Doc] = []
    test: list[Doc] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        k = max(1, round(len(group) * share)) if len(group) >= 3 else 0
        dev += group[:k]
        test += group[k : 2 * k]
        train += group[2 * k :]
    return train, dev, test


def load_splits(settings: Settings, data: DemoData, taxonomy: Taxonomy) -> Splits:
    """The data dir's query splits (+ its labelled KB docs), or the cold start's splits of its labelled docs."""
    cfg = settings.train
    if data.split("train").is_file():
        train, dev, test = (load_examples(data.split(name), taxonomy) for name in SPLITS)
        kb = iter_docs(data.docs, taxonomy) if data.docs.is_file() and cfg.doc_rows else iter([])
        docs = doc_rows(kb, chunk_chars=settings.chunk_chars, limit=cfg.doc_rows, seed=cfg.seed)
        return Splits(train, dev, test, docs, None)
    if not data.docs.is_file():
        raise DataError(
            f"{data.split('train')} is missing and there is no {data.docs} either: labelgate needs labelled queries "
            "(queries/train|dev|test.jsonl) or labelled docs to learn from"
        )
    labelled = [doc for doc in iter_docs(data.docs, taxonomy) if doc.labels]
    if len(labelled) < MIN_COLD_DOCS:
        raise DataError(
            f"{data.split('train')} is missing and {data.docs} has {len(labelled)} labelled docs: the cold start "
            f"needs at least {MIN_COLD_DOCS} (or write labelled queries to {data.split('train').parent}/)"
        )
    train_docs, dev_docs, test_docs = split_docs(labelled, COLD_SHARE, cfg.seed)
    dev = query_like(dev_docs, cfg.seed + 1, whole_short=True)
    test = query_like(test_docs, cfg.seed + 2, whole_short=True)
    if not dev or not test:
        raise DataError(f"{data.docs}: too few labelled docs per label to keep some for measuring (the cold start)")
    docs = doc_rows(train_docs, chunk_chars=settings.chunk_chars, limit=cfg.doc_rows or sys.maxsize, seed=cfg.seed)
    info = {"docs": {"train": len(train_docs), "dev": len(dev_docs), "test": len(test_docs)}, "passages": len(dev)}
    return Splits(query_like(train_docs, cfg.seed), dev, test, docs, info)
