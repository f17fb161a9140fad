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
from app.core.decision import VoteResult, VoterOutput, provisional_labels, vote
from app.core.doclabels import label_doc, titled
from app.core.embedder import load_embedder
from app.core.errors import ConfigError
from app.core.indexing import voter_labeler
from app.core.metrics import gate_metrics
from app.core.textutil import chunk_text
from app.core.voters.base import Voter
from app.core.voters.encoders import USE_SPEC, DiskCachedEncoder
from app.ops.eval import drift_math as dm
from app.ops.eval.classify import is_multi_label, outputs, predict
from app.ops.eval.datasets import Row, stratified_take
from app.ops.eval.retrieval import RetrievalData, doc_examples
from app.ops.training.splits import doc_rows, query_like

FOLDS = 4
DocOutputs = tuple[VoterOutput, ...]

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.core.taxonomy import Taxonomy
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


@dataclass(frozen=True)
class HeldOut:
    """A retrieval set's docs set aside to train the voters (a labelgate data dir trains on its queries instead)."""

    train: list[Example]  # docs the voters learn from
    dev: list[Example]  # docs their thresholds are set on
    docs: set[int]  # both: they stay out of every KB
    passages: list[Example]  # query-like passages of the training docs, learnt too
    calibration: list[Example]  # query-like passages of the dev docs: thresholds, and the cold-start reliability


def training_rows(data: RetrievalData, train_docs: int, seed: int) -> HeldOut:
    """A stratified sample of docs that no query judges (train, then a quarter as many for dev), with their query-like
    passages: the training docs' teach the voters the length of a question, the dev docs' measure how right their
    labels of a question are (the cold start: docs labelled, no labelled query). Empty for a labelgate data dir."""
    if data.native:
        return HeldOut([], [], set(), [], [])
    judged = {d for q in data.queries for d in (*q.relevant, *q.hard_negatives)}
    free: list[Row] = [(str(i), list(data.taxonomy.fine_only(doc.labels)), None) for i, doc in enumerate(data.docs)]
    free = [row for row in free if data.docs[int(row[0])].id not in judged]
    train, rest = stratified_take(free, train_docs, seed)
    dev, _ = stratified_take(rest, max(1, train_docs // 4), seed)
    pick = {int(row[0]) for row in train + dev}
    if len(pick) >= len(data.docs):
        raise ValueError("no docs left for the knowledge bases: lower train_docs")
    as_rows = doc_examples(data.docs)
    train_rows, dev_rows = [as_rows[int(r[0])] for r in train], [as_rows[int(r[0])] for r in dev]
    calibration = query_like(dev_rows, seed + 1, whole_short=True)
    return HeldOut(train_rows, dev_rows, pick, query_like(train_rows, seed), calibration)


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
) -> tuple[list[Voter], set[int], dict[str, Any], list[Example]]:
    """The promoted pair (`current_voters`), or both voters trained in `opt.mode`; the held-out training docs; the
    query-like passages of held-out dev docs that measure the voters' labels when no labelled query is known."""
    from app.core.voters.store import load_pair
    from app.ops.training.fit import fit_pair

    if opt.current_voters:
        voters = load_pair(settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime)
        if voters[0].meta.get("doc_rows") and not opt.gold_doc_labels:
            raise ConfigError(
                "the promoted voters were trained on these KB docs, so their doc labels would flatter them: "
                "add --gold-doc-labels, or leave out --current-voters (the run's voters label each doc unseen)"
            )
        return voters, set(), {"voters": "current", "version": voters[0].version}, []
    held = training_rows(data, opt.train_docs, opt.seed)
    train, dev = [*held.train, *held.passages], [*held.dev, *held.calibration]  # the voters label both kinds of text
    if data.native:
        queries, dev = native_splits(data)
        train = [*queries, *native_doc_rows(settings, data, exclude=set())]
    pair = fit_pair(settings, train, dev, data.taxonomy, mode=opt.mode, cache_dir=cache_dir)
    seconds = {name: round(s, 1) for name, s in pair.seconds.items()}
    trained_on = "queries/ splits" if data.native else "held-out docs and their query-like passages"
    info: dict[str, Any] = {"voters": opt.mode, "trained_on": trained_on}
    if data.native:
        info |= {"train_rows": len(train), "dev_rows": len(dev)}
    else:
        info |= {"train_rows": len(held.train), "dev_rows": len(held.dev), "passage_rows": len(held.passages)}
    info["train_seconds"] = seconds
    return list(pair.voters), held.docs, info, held.calibration


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
        for chunk in titled(data.docs[doc].title, chunk_text(data.docs[doc].text, settings.chunk_chars)):
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


def vote_texts(
    voters: Sequence[Voter], texts: Sequence[str], tax: Taxonomy, settings: Settings
) -> tuple[list[np.ndarray], list[list[VoterOutput]], list[VoteResult]]:
    """Each voter's probabilities and outputs for these texts, and the pair's vote on each."""
    probs = [voter.probs(list(texts)) for voter in voters]
    outs = [outputs(voter, p) for voter, p in zip(voters, probs, strict=True)]
    cfg = settings.vote
    votes = [
        vote(a, b, tax, min_margin=cfg.min_margin, min_fine_agreement=cfg.min_fine_agreement)
        for a, b in zip(*outs, strict=True)
    ]
    return probs, outs, votes


def served_labels(result: VoteResult, tax: Taxonomy) -> list[str]:
    """The labels retrieval filters on: the vote's when automatic, else the provisional ones (as the graph's)."""
    return result.labels if result.decision == "auto" else provisional_labels(result.candidates, (), tax)


def label_everything(settings: Settings, data: RetrievalData, opt: DriftOptions, *, cache_dir: Path) -> Labelled:
    tax = data.taxonomy
    started = time.perf_counter()
    voters, held, info, calibration = fit_voters(settings, data, opt, cache_dir)
    eligible = np.array([i not in held for i in range(len(data.docs))], dtype=bool)
    texts = [q.text for q in data.queries]
    probs, outs, votes = vote_texts(voters, texts, tax, settings)
    multi = is_multi_label([Example(q.text, q.labels) for q in data.queries], tax)
    gate = predict((probs[0] + probs[1]) / 2, tax, multi_label=multi).labels
    labelgate = [served_labels(v, tax) for v in votes]
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
    if calibration:  # the cold start: how right the voters are on question-length text they never learnt
        report["cold_start"] = cold_start_reliability(voters, calibration, data, settings)
    labelled = Labelled(
        eligible, doc_labels, doc_vectors, query_vectors, query_votes, gate, labelgate, escalated, report, doc_views
    )
    return labelled if opt.gold_doc_labels else decide_docs(labelled, data, settings)


def cold_start_reliability(
    voters: Sequence[Voter], rows: Sequence[Example], data: RetrievalData, settings: Settings
) -> dict[str, Any]:
    """The voters' query-label reliability measured on query-like passages of held-out labelled docs (no labelled
    query needed): per source as `drift.reliability` measures it on dev queries, and how many passages it rests on."""
    tax = data.taxonomy
    _, _, votes = vote_texts(voters, [row.text for row in rows], tax, settings)
    rows_scored = (
        (v.decision != "auto", served_labels(v, tax), row.labels) for v, row in zip(votes, rows, strict=True)
    )
    return {"passages": len(rows), "reliability": dm.source_reliability(rows_scored, tax.fine_only)}


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
