"""`labelgate data audit`: likely label issues, duplicates across splits and labels too rare to learn.

Label issues are found by confident learning (cleanlab) on out-of-fold probabilities: every row of every split (and
the KB's labelled docs and retrieval queries, in a labelgate data dir) is scored by heads trained on the other K-1
folds, one head per fast voter (voter A's encoder: `encoder_a_id`'s int8 export with class weights `weight`; voter B's:
`encoder_b` with `weight_b`; no augmentation), each text embedded once (cached on disk), the two voters' sigmoid
probabilities averaged. Multi-label data (any row with two leaf labels) goes through cleanlab's multi-label
`find_label_issues` (one-vs-rest per label, coarse parents included as the voters predict them), single-label data
through `cleanlab.filter.find_label_issues` over the leaf labels.

Duplicates: rows whose normalised texts are equal (NFKC, case, spaces and punctuation folded: `audit_math.normalise`)
and, across splits, pairs whose last voter's (B's) embeddings have cosine ≥ `dup_threshold` (default 0.85, for USE:
on the demo data the cross-split pairs above it are rewordings of one question, 10 of ~0.86M pairs; e5's cosines are
too compressed to threshold, median 0.86). A pair or group with different label sets is
`conflicting`: one of them is mislabelled, or the text is ambiguous.

Rare labels: fewer than `min_train` rows in train; absent: no row in dev or test (it cannot be measured there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.core.config import Settings, TrainSettings
from app.core.data import DemoData, Example, load_docs, load_examples
from app.core.errors import DataError
from app.core.extras import require
from app.core.fileio import iter_jsonl
from app.core.taxonomy import Taxonomy
from app.core.voters.calibrate import sigmoid
from app.core.voters.encoders import DiskCachedEncoder, TextEncoder
from app.ops.eval import audit_math as am
from app.ops.training.loops import train_head

log = logging.getLogger(__name__)
# The JSON report's top-level keys (README "Data audit"):
REPORT_KEYS = (
    "dataset",  # the --data path
    "format",  # "labelgate" (taxonomy.yaml + queries/) or "public" (train.jsonl …, prepared as eval classify does)
    "rows",  # rows per split: train, dev, test, and docs / kb_queries from kb/ in a labelgate data dir
    "labels",  # labels in the taxonomy
    "multi_label",  # any row with two leaf labels: cleanlab's multi-label path, else the single-label one
    "folds",  # K of the K-fold out-of-fold probabilities
    "voters",  # voter name → encoder whose frozen embeddings its heads were trained on
    "cv_exact_accuracy",  # per split: out-of-fold predicted label set == given label set
    "summary",  # counts of everything below
    "label_issues",  # [{split, line, [id], text, labels, suggested, quality, probs}], worst label quality first
    "duplicates",  # {threshold, exact: [{rows, cross_split, conflicting}], near: [{a, b, cosine, conflicting}]}
    "rare_labels",  # {min_train, counts: {label: {split: rows}}, rare: [labels], absent: {label: [splits]}}
    "seconds",  # embed_<voter>, heads_<voter>, wall
)
DUP_THRESHOLD = 0.85
MIN_TRAIN = 10
HEAD_EPOCHS = 100  # per fold; the heads keep their best epoch on a held-out tenth


@dataclass(frozen=True)
class AuditVoter:
    """One cross-validated voter: its frozen encoder and the taxonomy weight field its loss uses."""

    name: str
    encoder: TextEncoder
    weight: str = "weight_b"


@dataclass(frozen=True)
class Row:
    split: str  # train | dev | test | docs | kb_queries
    line: int
    text: str
    labels: tuple[str, ...]  # expanded with coarse parents
    id: str | None = None

    def ref(self, taxonomy: Taxonomy) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "line": self.line}
        if self.id is not None:
            out["id"] = self.id
        return out | {"text": self.text, "labels": taxonomy.fine_only(self.labels)}


class _Lookup:
    """An encoder over precomputed vectors (every text of the audit embedded once)."""

    def __init__(self, spec: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.spec, self.dim = spec, int(vectors.shape[1])
        self.index = {text: i for i, text in enumerate(texts)}
        self.vectors = vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.index[t] for t in texts]]


def _rows(path: Path, split: str, taxonomy: Taxonomy, *, with_id: bool = False) -> list[Row]:
    examples = load_examples(path, taxonomy)  # validates, with file:line errors
    meta = [(number, row.get("id")) for number, row in iter_jsonl(path)]
    return [
        Row(split, number, ex.text, ex.labels, str(doc_id) if with_id and doc_id is not None else None)
        for ex, (number, doc_id) in zip(examples, meta, strict=True)
    ]


def load_rows(work: Path, taxonomy: Taxonomy, *, native: bool) -> list[Row]:
    """The three splits, plus (labelgate data dirs) the KB's labelled docs and retrieval queries when present."""
    data = DemoData(work)
    rows = [row for name in am.SPLITS for row in _rows(data.split(name), name, taxonomy)]
    if native and data.docs.is_file():
        numbers = [number for number, _ in iter_jsonl(data.docs)]
        docs = zip(load_docs(data.docs, taxonomy), numbers, strict=True)  # validated as the KB loads them
        rows += [Row("docs", number, doc.text, doc.labels, doc.id) for doc, number in docs if doc.labels]
    kb_queries = work / "kb" / "queries.jsonl"
    if native and kb_queries.is_file():
        rows += _rows(kb_queries, "kb_queries", taxonomy, with_id=True)
    return rows


def default_voters(settings: Settings) -> list[AuditVoter]:
    """Both fast voters' frozen encoders, each behind the on-disk embedding cache `eval classify` uses."""
    from app.core.embedder import build_int8
    from app.core.voters.onnx import OnnxEncoder
    from app.ops.training.train import encoder_b

    cache = settings.home / "eval" / "cache"
    path = build_int8(settings, settings.encoder_a_id)
    a = OnnxEncoder(settings.encoder_a_id, path, threads=settings.threads, prefix=settings.query_prefix)
    return [
        AuditVoter("A", DiskCachedEncoder(a, cache), "weight"),
        AuditVoter("B", DiskCachedEncoder(encoder_b(settings), cache), "weight_b"),
    ]


def out_of_fold(
    rows: Sequence[Row],
    vectors: np.ndarray,
    voter: AuditVoter,
    taxonomy: Taxonomy,
    cfg: TrainSettings,
    folds: np.ndarray,
) -> np.ndarray:
    """(n, labels) probabilities of each row from a head trained without its fold (early stopping on a seeded tenth
    of the other folds)."""
    texts = [row.text for row in rows]
    lookup = _Lookup(voter.encoder.spec, texts, vectors)
    examples = [Example(row.text, row.labels) for row in rows]
    out = np.zeros((len(rows), len(taxonomy.ids)), dtype=np.float32)
    rng = np.random.default_rng(cfg.seed)
    for k in range(int(folds.max()) + 1):
        held, rest = np.nonzero(folds == k)[0], np.nonzero(folds != k)[0]
        stop = rng.random(len(rest)) < 0.1
        train = [examples[i] for i in rest[~stop]]
        dev = [examples[i] for i in rest[stop]] or train[:1]
        head = train_head(train, dev, taxonomy, encoder=lookup, cfg=cfg, weight=voter.weight, augment=False)
        with torch.inference_mode():
            out[held] = sigmoid(head(torch.tensor(vectors[held])).numpy())
    return out


def label_issues(rows: Sequence[Row], probs: np.ndarray, taxonomy: Taxonomy, multi: bool) -> list[dict[str, Any]]:
    """Rows cleanlab flags, worst label quality first, with the cross-validated suggestion."""
    require("cleanlab", "audit")
    ids = taxonomy.ids
    if multi:
        from cleanlab.multilabel_classification.filter import find_label_issues
        from cleanlab.multilabel_classification.rank import get_label_quality_scores

        used = [j for j in range(len(ids)) if any(ids[j] in row.labels for row in rows)]
        given = [[used.index(ids.index(x)) for x in row.labels] for row in rows]
        p = np.clip(probs[:, used], 1e-6, 1 - 1e-6)
        flagged = find_label_issues(given, p)
        quality = get_label_quality_scores(given, p)
        columns = [ids[j] for j in used]
    else:
        from cleanlab.filter import find_label_issues as find_single
        from cleanlab.rank import get_label_quality_scores as quality_single

        leaf = [taxonomy.fine_only(row.labels)[0] for row in rows]
        columns = [x for x in ids if x in set(leaf)]
        given_single = np.array([columns.index(x) for x in leaf])
        p = probs[:, [ids.index(x) for x in columns]] + 1e-9
        p = p / p.sum(axis=1, keepdims=True)
        flagged = find_single(given_single, p)
        quality = quality_single(given_single, p)
    issues = []
    for i in map(int, np.nonzero(flagged)[0]):
        row = rows[i]
        say = taxonomy.fine_only(taxonomy.expand(am.suggested(p[i], columns, multi_label=multi)))
        shown = dict.fromkeys([*taxonomy.fine_only(row.labels), *say])
        issues.append(
            row.ref(taxonomy)
            | {
                "suggested": say,
                "quality": round(float(quality[i]), 4),
                "probs": am.rounded({x: p[i][columns.index(x)] for x in shown if x in columns}),
            }
        )
    return sorted(issues, key=lambda issue: (issue["quality"], issue["split"], issue["line"]))


def run_audit(
    settings: Settings,
    src: Path,
    *,
    folds: int = 5,
    min_train: int = MIN_TRAIN,
    dup_threshold: float = DUP_THRESHOLD,
    voters: Sequence[AuditVoter] | None = None,
) -> dict[str, Any]:
    """Audit a labelgate data dir or a public dataset dir (prepared as `eval classify` prepares it); the JSON report."""
    from app.ops.eval.classify import dataset_dir, is_multi_label
    from app.ops.eval.datasets import prepare

    if folds < 2:
        raise DataError(f"--folds must be at least 2, not {folds}")
    if not src.is_dir():
        raise DataError(f"{src}: not a directory (expected a labelgate data dir or a dataset dir with train.jsonl)")
    require("cleanlab", "audit")
    started = time.perf_counter()
    native = (src / "taxonomy.yaml").is_file() and (src / "queries").is_dir()
    work = src if native else prepare(src, dataset_dir(settings, src, None, None))
    taxonomy = Taxonomy.load(work / "taxonomy.yaml")
    rows = load_rows(work, taxonomy, native=native)
    if len(rows) < 2 * folds:
        raise DataError(f"{src}: {len(rows)} rows are too few for {folds} folds")
    torch.set_num_threads(settings.threads)  # the encoders
    voters = list(voters) if voters is not None else default_voters(settings)
    texts = [row.text for row in rows]
    keys = ["+".join(taxonomy.fine_only(row.labels)) for row in rows]
    fold_of = am.stratified_folds(keys, folds, settings.train.seed)
    vectors, probs, seconds = {}, [], {}
    for voter in voters:
        tick = time.perf_counter()
        vectors[voter.name] = np.asarray(voter.encoder.encode(texts), dtype=np.float32)
        seconds[f"embed_{voter.name}"] = round(time.perf_counter() - tick, 1)
    cfg = settings.train.model_copy(update={"epochs_b": min(settings.train.epochs_b, HEAD_EPOCHS)})
    torch.set_num_threads(1)  # heads this small run slower on two threads of a busy machine than on one
    for voter in voters:
        tick = time.perf_counter()
        probs.append(out_of_fold(rows, vectors[voter.name], voter, taxonomy, cfg, fold_of))
        seconds[f"heads_{voter.name}"] = round(time.perf_counter() - tick, 1)
        log.info("audit: %d heads of voter %s in %.1f s", folds, voter.name, seconds[f"heads_{voter.name}"])
    torch.set_num_threads(settings.threads)
    mean = np.mean(probs, axis=0)
    multi = is_multi_label([Example(r.text, r.labels) for r in rows if r.split in am.SPLITS], taxonomy)
    issues = label_issues(rows, mean, taxonomy, multi)
    queries = [i for i, row in enumerate(rows) if row.split != "docs"]  # duplicates: among queries only
    dup_vectors = vectors[voters[-1].name][queries]
    duplicates = find_duplicates([rows[i] for i in queries], dup_vectors, dup_threshold, taxonomy)
    split_of = [row.split for row in rows]
    rare = am.label_counts(split_of, [r.labels for r in rows], taxonomy.ids, min_train=min_train)
    return {
        "dataset": str(src),
        "format": "labelgate" if native else "public",
        "rows": {name: split_of.count(name) for name in dict.fromkeys(split_of)},
        "labels": len(taxonomy.ids),
        "multi_label": multi,
        "folds": folds,
        "voters": {voter.name: voter.encoder.spec for voter in voters},
        "cv_exact_accuracy": cv_accuracy(rows, mean, taxonomy, multi),
        "summary": am.summary(issues, duplicates, rare),
        "label_issues": issues,
        "duplicates": duplicates,
        "rare_labels": rare,
        "seconds": seconds | {"wall": round(time.perf_counter() - started, 1)},
    }


def cv_accuracy(rows: Sequence[Row], probs: np.ndarray, taxonomy: Taxonomy, multi: bool) -> dict[str, float]:
    """Per split: the share of rows whose out-of-fold predicted label set equals the given one."""
    from app.ops.eval.classify import predict

    pred = predict(probs, taxonomy, multi_label=multi).labels
    ok: dict[str, list[bool]] = {}
    for row, labels in zip(rows, pred, strict=True):
        ok.setdefault(row.split, []).append(set(labels) == set(row.labels))
    return {split: round(float(np.mean(v)), 4) for split, v in ok.items()}


def find_duplicates(rows: Sequence[Row], vectors: np.ndarray, threshold: float, taxonomy: Taxonomy) -> dict[str, Any]:
    """Exact (normalised-text) duplicate groups, and near-duplicate pairs across splits."""
    splits = [row.split for row in rows]
    labels = [row.labels for row in rows]
    exact = am.exact_duplicates(splits, [row.text for row in rows], labels)
    skip = {frozenset((a, b)) for group in exact for a in group["rows"] for b in group["rows"] if a != b}
    near = am.near_duplicates(splits, vectors, threshold, skip=skip)
    return {
        "threshold": threshold,
        "exact": [
            {"rows": [rows[i].ref(taxonomy) for i in g["rows"]], "cross_split": g["cross_split"],
             "conflicting": g["conflicting"]}
            for g in exact
        ],
        "near": [
            {"a": rows[i].ref(taxonomy), "b": rows[j].ref(taxonomy), "cosine": round(cos, 4),
             "conflicting": set(labels[i]) != set(labels[j])}
            for i, j, cos in near
        ],
    }  # fmt: skip
