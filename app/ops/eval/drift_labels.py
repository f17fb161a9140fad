"""What the drift benchmark knows before it ranks: the voters (trained for the run, or the promoted pair), their labels
for every query and doc (docs as `labelgate index` labels them), the label accuracy of both, and the retrieval
embedder's vectors. Computed once per dataset; embeddings are cached on disk."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.data import Doc, Example, load_examples
from app.core.decision import VoterOutput, vote
from app.core.doclabels import label_doc
from app.core.embedder import load_embedder
from app.core.errors import ConfigError
from app.core.indexing import voter_labeler
from app.core.metrics import gate_metrics
from app.core.textutil import chunk_text
from app.core.voters.base import Voter
from app.core.voters.encoders import USE_SPEC, DiskCachedEncoder
from app.ops.eval.classify import is_multi_label, outputs, predict
from app.ops.eval.datasets import Row, stratified_take
from app.ops.eval.retrieval import RetrievalData, doc_examples
from app.ops.training.train import doc_rows

FOLDS = 4
DocOutputs = tuple[VoterOutput, ...]

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.ops.eval.drift_options import DriftOptions


@dataclass
class Labelled:
    eligible: np.ndarray  # docs that may enter a KB (the public datasets' training docs may not)
    doc_labels: list[list[str]]  # expanded labels the filters see (voters' or gold); [] = unlabelled
    doc_vectors: np.ndarray
    query_vectors: np.ndarray
    query_votes: list[dict[str, dict[str, Any]]]  # per query, per voter: probs and accepted labels
    gate_labels: list[list[str]]  # the voters' mean probabilities decoded (always a label)
    labelgate_labels: list[list[str]]  # auto: the vote's labels; escalated: the candidates' coarse labels
    escalated: list[bool]
    report: dict[str, Any]
    doc_outputs: list[DocOutputs | None] = field(default_factory=list)  # per doc: each voter's chunk-mean view
    doc_conf: np.ndarray | None = None  # per doc: confidence in its labels (None: labels given, fully trusted)


def training_rows(data: RetrievalData, train_docs: int, seed: int) -> tuple[list[Example], list[Example], set[int]]:
    """Voter training rows: a labelgate data dir's queries/ splits, else a stratified sample of docs that no query
    judges (train, then a quarter as many for dev), which then stay out of every KB."""
    if data.native:
        return [], [], set()
    judged = {d for q in data.queries for d in (*q.relevant, *q.hard_negatives)}
    free: list[Row] = [(str(i), list(data.taxonomy.fine_only(doc.labels)), None) for i, doc in enumerate(data.docs)]
    free = [row for row in free if data.docs[int(row[0])].id not in judged]
    train, rest = stratified_take(free, train_docs, seed)
    dev, _ = stratified_take(rest, max(1, train_docs // 4), seed)
    pick = {int(row[0]) for row in train + dev}
    if len(pick) >= len(data.docs):
        raise ValueError("no docs left for the knowledge bases: lower train_docs")
    as_rows = doc_examples(data.docs)
    return [as_rows[int(r[0])] for r in train], [as_rows[int(r[0])] for r in dev], pick


def native_splits(data: RetrievalData) -> tuple[list[Example], list[Example]]:
    splits = data.root / "queries"
    train, dev = (load_examples(splits / f"{name}.jsonl", data.taxonomy) for name in ("train", "dev"))
    return train, dev


def native_doc_rows(settings: Settings, data: RetrievalData, *, exclude: set[int]) -> list[Example]:
    """The KB docs `labelgate train` adds to the training rows, but those in `exclude`."""
    docs = [Doc(d.id, d.text, d.labels, d.title) for i, d in enumerate(data.docs) if i not in exclude]
    cfg = settings.train
    return doc_rows(docs, chunk_chars=settings.chunk_chars, limit=cfg.doc_rows, seed=cfg.seed)


def cross_fitted_doc_labels(
    settings: Settings, data: RetrievalData, opt: DriftOptions, cache_dir: Path, eligible: np.ndarray
) -> tuple[list[list[str]], list[DocOutputs | None]]:
    """A labelgate data dir's docs labelled by voters trained on its queries and the other folds' docs, so no doc is
    labelled by voters that learnt it (`labelgate train` adds labelled KB docs to the training rows)."""
    from app.ops.training.fit import fit_pair

    queries, dev = native_splits(data)
    labels: list[list[str]] = [[] for _ in data.docs]
    views: list[DocOutputs | None] = [None for _ in data.docs]
    for fold in range(FOLDS):
        inside = {i for i in range(len(data.docs)) if i % FOLDS == fold}
        train = [*queries, *native_doc_rows(settings, data, exclude=inside)]
        pair = fit_pair(settings, train, dev, data.taxonomy, mode=opt.mode, cache_dir=cache_dir)
        mask = eligible & np.isin(np.arange(len(data.docs)), sorted(inside))
        found, seen = label_docs(list(pair.voters), data, mask, settings)
        for i in inside:
            labels[i], views[i] = found[i], seen[i]
    return labels, views


def fit_voters(
    settings: Settings, data: RetrievalData, opt: DriftOptions, cache_dir: Path
) -> tuple[list[Voter], set[int], dict[str, Any]]:
    """The promoted pair (`current_voters`), or both voters trained in `opt.mode`; the held-out training docs."""
    from app.core.voters.store import load_pair
    from app.ops.training.fit import fit_pair

    if opt.current_voters:
        voters = load_pair(settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime)
        if voters[0].meta.get("doc_rows") and not opt.gold_doc_labels:
            raise ConfigError(
                "the promoted voters were trained on these KB docs, so their doc labels would flatter them: "
                "add --gold-doc-labels, or leave out --current-voters (the run's voters label each doc unseen)"
            )
        return voters, set(), {"voters": "current", "version": voters[0].version}
    train, dev, held = training_rows(data, opt.train_docs, opt.seed)
    if data.native:
        queries, dev = native_splits(data)
        train = [*queries, *native_doc_rows(settings, data, exclude=set())]
    pair = fit_pair(settings, train, dev, data.taxonomy, mode=opt.mode, cache_dir=cache_dir)
    seconds = {name: round(s, 1) for name, s in pair.seconds.items()}
    trained_on = "queries/ splits" if data.native else "held-out docs"
    info = {"voters": opt.mode, "trained_on": trained_on, "train_rows": len(train), "dev_rows": len(dev)}
    info["train_seconds"] = seconds
    return list(pair.voters), held, info


def label_accuracy(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], data: RetrievalData) -> dict[str, Any]:
    """Exact leaf-set accuracy, share with at least one right leaf label, share left unlabelled."""
    tax = data.taxonomy
    pairs = [(set(tax.fine_only(p)), set(tax.fine_only(g))) for p, g in zip(pred, gold, strict=True)]
    n = max(len(pairs), 1)
    return {
        "rows": len(pairs),
        "exact": round(sum(p == g for p, g in pairs) / n, 4),
        "any_right": round(sum(bool(p & g) for p, g in pairs) / n, 4),
        "unlabelled": round(sum(not p for p, _ in pairs) / n, 4),
    }


def label_docs(
    voters: Sequence[Voter], data: RetrievalData, eligible: np.ndarray, settings: Settings
) -> tuple[list[list[str]], list[DocOutputs | None]]:
    """Chunk labels from the two voters united per doc — what `labelgate index` stores for an unlabelled doc — and
    each voter's view of each doc (its chunk probabilities averaged)."""
    label = voter_labeler(voters, data.taxonomy, settings)
    owner: list[int] = []  # doc of each chunk
    flat: list[str] = []
    for doc in np.flatnonzero(eligible).tolist():
        for chunk in chunk_text(data.docs[doc].text, settings.chunk_chars):
            owner.append(doc)
            flat.append(chunk)
    united: list[list[str]] = [[] for _ in data.docs]
    for i, chunk_labels in zip(owner, label(flat) if flat else [], strict=True):
        united[i] += chunk_labels
    views: list[DocOutputs | None] = [None for _ in data.docs]
    if flat:
        chunk_probs = [voter.probs(flat) for voter in voters]
        where = np.array(owner)
        for doc in sorted(set(owner)):
            rows = where == doc
            views[doc] = tuple(
                VoterOutput(v.name, dict(zip(v.labels, p[rows].mean(axis=0).tolist(), strict=True)), v.thresholds)
                for v, p in zip(voters, chunk_probs, strict=True)
            )
    return [data.taxonomy.expand(labels) for labels in united], views


def label_everything(settings: Settings, data: RetrievalData, opt: DriftOptions, *, cache_dir: Path) -> Labelled:
    tax = data.taxonomy
    started = time.perf_counter()
    voters, held, info = fit_voters(settings, data, opt, cache_dir)
    eligible = np.array([i not in held for i in range(len(data.docs))], dtype=bool)
    texts = [q.text for q in data.queries]
    probs = [voter.probs(texts) for voter in voters]
    outs = [outputs(voter, p) for voter, p in zip(voters, probs, strict=True)]
    votes = [
        vote(a, b, tax, min_margin=settings.vote.min_margin, min_fine_agreement=settings.vote.min_fine_agreement)
        for a, b in zip(*outs, strict=True)
    ]
    multi = is_multi_label([Example(q.text, q.labels) for q in data.queries], tax)
    gate = predict((probs[0] + probs[1]) / 2, tax, multi_label=multi).labels
    labelgate = [v.labels if v.decision == "auto" else [x for x in v.candidates if x in tax.coarse_ids] for v in votes]
    query_votes = [
        {o.name: {"probs": dict(o.probs), "accepted": o.accepted} for o in pair} for pair in zip(*outs, strict=True)
    ]
    gold_q = [list(q.labels) for q in data.queries]
    cross_fit = data.native and not opt.current_voters and settings.train.doc_rows > 0
    doc_views: list[DocOutputs | None] = [None for _ in data.docs]
    if opt.gold_doc_labels:
        doc_labels = [list(doc.labels) if ok else [] for doc, ok in zip(data.docs, eligible, strict=True)]
        info["doc_labels_by"] = "gold"
    elif cross_fit:
        doc_labels, doc_views = cross_fitted_doc_labels(settings, data, opt, cache_dir, eligible)
        info["doc_labels_by"] = f"voters, {FOLDS}-fold cross-fitted (trained on the queries and the other folds' docs)"
    else:
        doc_labels, doc_views = label_docs(voters, data, eligible, settings)
        info["doc_labels_by"] = "the run's voters (never trained on these docs)"
    labelled_at = time.perf_counter()
    embedder = DiskCachedEncoder(load_embedder(settings), cache_dir)
    plain = embedder.spec == USE_SPEC
    q_prefix, p_prefix = ("", "") if plain else (settings.query_prefix, settings.passage_prefix)
    doc_vectors = np.zeros((len(data.docs), embedder.dim), dtype=np.float32)
    keep = np.flatnonzero(eligible)
    doc_vectors[keep] = embedder.encode([p_prefix + data.docs[i].text for i in keep])
    query_vectors = embedder.encode([q_prefix + t for t in texts])
    in_kb = keep.tolist()
    report = info | {
        "queries": label_accuracy(gate, gold_q, data),
        "queries_auto": gate_metrics([v.decision == "auto" for v in votes], [v.labels for v in votes], gold_q),
        "docs": label_accuracy([doc_labels[i] for i in in_kb], [list(data.docs[i].labels) for i in in_kb], data),
        "label_seconds": round(labelled_at - started, 1),
        "embed_seconds": round(time.perf_counter() - labelled_at, 1),
        "embedder": embedder.spec,
    }
    escalated = [v.decision != "auto" for v in votes]
    labelled = Labelled(
        eligible, doc_labels, doc_vectors, query_vectors, query_votes, gate, labelgate, escalated, report, doc_views
    )
    return labelled if opt.gold_doc_labels else decide_docs(labelled, data, settings)


def decide_docs(lab: Labelled, data: RetrievalData, settings: Settings) -> Labelled:
    """Doc labels decided per doc with a confidence (app/core/doclabels.py) from each voter's doc-level view; the report
    keeps the chunk-union labels' accuracy as `docs_chunk_union`."""
    tax = data.taxonomy
    labels, conf = list(lab.doc_labels), np.zeros(len(data.docs))
    for i, views in enumerate(lab.doc_outputs):
        if views is None:
            continue
        found = label_doc(
            views, tax, min_margin=settings.vote.min_margin, min_fine_agreement=settings.vote.min_fine_agreement
        )
        labels[i], conf[i] = found.labels, found.confidence
    in_kb = [i for i, views in enumerate(lab.doc_outputs) if views is not None]
    gold = [list(data.docs[i].labels) for i in in_kb]
    report = lab.report | {
        "docs_chunk_union": lab.report["docs"],
        "docs": label_accuracy([labels[i] for i in in_kb], gold, data),
        "docs_confidence": confidence_report(
            conf[in_kb], [set(labels[i]) == set(g) for i, g in zip(in_kb, gold, strict=True)]
        ),
    }
    lab.doc_labels, lab.doc_conf, lab.report = labels, conf, report
    return lab


def confidence_report(conf: np.ndarray, right: Sequence[bool]) -> dict[str, Any]:
    """Is the doc-label confidence worth trusting: exact accuracy of the docs above / below 0.5, mean confidence."""
    ok = np.asarray(right, dtype=bool)
    sure = conf >= 0.5
    return {
        "mean": round(float(conf.mean()), 4) if len(conf) else 0.0,
        "sure_share": round(float(sure.mean()), 4) if len(conf) else 0.0,
        "exact_when_sure": round(float(ok[sure].mean()), 4) if sure.any() else None,
        "exact_when_unsure": round(float(ok[~sure].mean()), 4) if (~sure).any() else None,
    }
