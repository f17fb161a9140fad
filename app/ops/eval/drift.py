"""`labelgate eval drift`: does retrieval decay as the knowledge base grows with other-label content?

Each query starts from a KB of its relevant docs, its hard negatives and docs of its own labels; every growth step adds
N× as many docs that share none of its labels (the seed's marketing pages). Four retrievers are scored at every
step: dense only; gated (the voters' labels as a strict filter); oracle (gold labels, the upper bound); labelgate (the
product's vote, widening and fused rerank). Doc labels come from the voters, as `labelgate index` makes them, unless
`gold_doc_labels`. Ranking is exact cosine search over the retrieval embedder's vectors: labelgate's label partitions
return exactly that (`labelgate bench filter`: recall@10 1.000 of exact)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import Settings
from app.core.errors import ConfigError, DataError
from app.core.ranking import filter_plan, keyword_overlap, label_match
from app.core.softgate import admissible, admit, label_term, query_trust, tree_match
from app.core.textutil import terms
from app.ops.eval import drift_math as dm
from app.ops.eval.drift_labels import Labelled, label_everything
from app.ops.eval.drift_options import DriftOptions
from app.ops.eval.retrieval import RetrievalData, load_retrieval
from nodes.rerank import query_label_probs

log = logging.getLogger(__name__)
METHODS = ("dense", "gated", "oracle", "labelgate", "labelgate_reviewed")
REVIEWED = "labelgate_reviewed"  # escalated queries answered after review: the gold labels stand in for the reviewer
LABEL_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
KEYWORD_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def growth_key(growth: float) -> str:
    return str(int(growth)) if float(growth).is_integer() else f"{growth:g}"


@dataclass(frozen=True)
class View:
    """A query's final labels as retrieval sees them: filter stages (widening order), rerank label probabilities and
    how far the rerank may trust those labels."""

    stages: list[list[int] | None]
    probs: dict[str, float]
    trust: float


@dataclass
class Query:
    """Everything one query needs at every growth step."""

    index: int
    pool: dm.Pool
    scores: np.ndarray  # cosine to every doc
    relevant: frozenset[int]
    gold_leaves: list[int]  # the oracle's filter
    categories: list[int]  # growth adds docs of none of these; purity counts docs of any
    gate_leaves: list[int]
    views: dict[str, View]  # labelgate / reviewed: filter stages, probs, trust
    terms: list[str]


class DriftRun:
    """One dataset, labelled and embedded once; every method and growth step evaluated over it."""

    def __init__(self, data: RetrievalData, labelled: Labelled, settings: Settings, options: DriftOptions) -> None:
        self.data, self.lab, self.settings, self.opt = data, labelled, settings, options
        self.reliability: dict[str, float] = {}  # per query-label source: exact accuracy on dev queries (--tune)
        tax = data.taxonomy
        self.tax = tax
        self.gold = self._matrix([tax.fine_only(doc.labels) for doc in data.docs])  # leaf labels
        self.cats = self._matrix([self.categories(doc.labels) for doc in data.docs])
        self.pred = self._matrix(labelled.doc_labels)  # expanded labels the filters see
        n = len(data.docs)
        given = options.gold_doc_labels or labelled.doc_conf is None or not options.soft
        self.doc_conf = np.ones(n) if given else np.asarray(labelled.doc_conf, dtype=float)
        self._doc_terms: dict[int, list[str]] = {}
        self.owner: np.ndarray | None = None  # chunk -> its source document's number, with --doc-id-sep
        if data.doc_id_sep:
            numbers: dict[str, int] = {}
            self.owner = np.array([numbers.setdefault(s, len(numbers)) for s in data.sources()], dtype=np.int64)

    def _matrix(self, label_sets: Sequence[Sequence[str]]) -> np.ndarray:
        matrix = np.zeros((len(label_sets), len(self.tax.ids)), dtype=bool)
        for i, labels in enumerate(label_sets):
            matrix[i, [self.tax.index(x) for x in labels if x in self.tax]] = True
        return matrix

    def categories(self, labels: Sequence[str]) -> list[str]:
        """A row's categories: its coarse labels (the seed's after-sales vs marketing), or its leaf labels."""
        leaves = self.tax.fine_only(labels)
        return list(dict.fromkeys(self.tax.coarse_of(x) for x in leaves)) if self.opt.level == "coarse" else leaves

    def _scored_as(self, doc: int) -> int:
        return doc if self.owner is None else int(self.owner[doc])

    def _idx(self, labels: Sequence[str]) -> list[int]:
        return [self.tax.index(x) for x in labels if x in self.tax]

    def queries(self, indices: Sequence[int]) -> tuple[list[Query], list[str]]:
        """The evaluable queries among `indices`, and why the others were skipped."""
        tax, lab, data = self.tax, self.lab, self.data
        doc_of = data.doc_index()
        found, skipped = [], []
        for qi in indices:
            q = data.queries[qi]
            cats = self._idx(self.categories(q.labels))
            shares = np.asarray(self.cats[:, cats].any(axis=1), dtype=bool)
            rng = np.random.default_rng([self.opt.seed, qi])
            pool = dm.growth_pool(
                shares,
                lab.eligible,
                [doc_of[d] for d in q.relevant],
                [doc_of[d] for d in q.hard_negatives],
                base_docs=self.opt.base_docs,
                max_growth=max(self.opt.growth),
                rng=rng,
            )
            if pool is None:
                skipped.append(q.id)
                continue
            source = "provisional" if lab.escalated[qi] else "voters"
            views = {"labelgate": self._view(qi, lab.labelgate_labels[qi], source)}
            views[REVIEWED] = self._view(qi, q.labels, "human") if lab.escalated[qi] else views["labelgate"]
            found.append(
                Query(
                    qi,
                    pool,
                    lab.doc_vectors @ lab.query_vectors[qi],
                    frozenset(self._scored_as(doc_of[d]) for d in q.relevant),
                    self._idx(tax.fine_only(q.labels)),
                    cats,
                    self._idx(tax.fine_only(lab.gate_labels[qi])),
                    views,
                    terms(q.text),
                )
            )
        return found, skipped

    def _view(self, qi: int, labels: Sequence[str], source: str) -> View:
        """The filter stages, rerank label probabilities and trust of a query with these final labels."""
        stages = [None if not stage.labels else self._idx(stage.labels) for stage in filter_plan(labels, self.tax)]
        votes = self.lab.query_votes[qi]
        state = {"votes": votes, "labels": list(labels)}
        mean = {x: float(np.mean([v["probs"].get(x, 0.0) for v in votes.values()])) for x in labels}
        confidence = min(mean.values(), default=0.0)  # the vote's: its weakest label, both voters averaged
        trust = query_trust(source, confidence, reliability=self.reliability) if self.opt.soft else 1.0
        return View(stages, query_label_probs(state), trust)  # type: ignore[arg-type]

    def _terms(self, doc: int) -> list[str]:
        if doc not in self._doc_terms:
            d = self.data.docs[doc]
            self._doc_terms[doc] = terms(f"{d.title} {d.text}")
        return self._doc_terms[doc]

    def on_topic(self, q: Query, docs: np.ndarray) -> np.ndarray:
        if not len(docs):
            return np.zeros(0, dtype=bool)
        return np.asarray(self.cats[np.ix_(docs, np.asarray(q.categories, dtype=np.int64))].any(axis=1), dtype=bool)

    def case(self, q: Query, kb: np.ndarray, view: str = "labelgate") -> dm.RerankCase:
        """labelgate's candidates in this KB (widening over exact search) with their rerank components."""
        seen = q.views[view]
        found, _ = dm.staged(q.scores, kb, self.pred, seen.stages, k=self.opt.k, fetch_k=self.opt.fetch_k)
        source = "given" if self.opt.gold_doc_labels else "voters"  # as `labelgate index` would have stored them
        if self.opt.soft and admissible(source, seen.trust):  # a filter is a prior: the best unfiltered docs compete
            found, _ = admit(found, dm.top(q.scores, kb, self.opt.fetch_k).tolist(), key=lambda doc: doc)
        cands = np.array(found, dtype=np.int64)
        matching = tree_match if self.opt.soft else label_match
        match = [matching(self.lab.doc_labels[d], seen.probs, self.tax) for d in found]
        components = np.column_stack(
            [
                dm.minmax_array(q.scores[cands]),
                [label_term(m, seen.trust, self.doc_conf[d]) for m, d in zip(match, found, strict=True)],
                [keyword_overlap(q.terms, self._terms(d)) for d in found],
            ]
        ).reshape(len(found), 3)
        return dm.RerankCase(cands, components, q.relevant, self.on_topic(q, cands), self.owner)

    def plain(self, q: Query, kb: np.ndarray) -> dict[str, dict[str, float]]:
        """dense, gated and oracle top k in this KB, scored."""
        k = self.opt.k
        ranked = {
            "dense": dm.top(q.scores, kb, k),
            "gated": dm.top(q.scores, dm.carries_any(self.pred, kb, q.gate_leaves), k),
            "oracle": dm.top(q.scores, dm.carries_any(self.gold, kb, q.gold_leaves), k),
        }
        return {
            m: dm.scored(r.tolist(), q.relevant, self.on_topic(q, r).tolist(), k, self.owner) for m, r in ranked.items()
        }


def reliability(data: RetrievalData, lab: Labelled, indices: Sequence[int]) -> dict[str, float]:
    """How often the query labels of each source are right on these (dev) queries (drift_math.source_reliability).
    Scales query trust."""
    rows = ((lab.escalated[qi], lab.labelgate_labels[qi], data.queries[qi].labels) for qi in indices)
    return dm.source_reliability(rows, data.taxonomy.fine_only)


def split_queries(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """(dev, test) query indices, a seeded random `share` for dev."""
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, round(n * share))
    return sorted(order[:cut].tolist()), sorted(order[cut:].tolist())


def evaluate(
    run: DriftRun, queries: Sequence[Query], weights: dict[str, float]
) -> tuple[dict[str, Any], dict[str, list[dm.RerankCase]]]:
    """results[method][growth][metric] over `queries`, mean KB sizes, and labelgate's cases per growth."""
    results: dict[str, dict[str, Any]] = {m: {} for m in METHODS}
    sizes: dict[str, float] = {}
    cases: dict[str, list[dm.RerankCase]] = {}
    for growth in run.opt.growth:
        key = growth_key(growth)
        rows: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        cases[key] = []
        kb_sizes = []
        for q in queries:
            kb = q.pool.kb(growth)
            kb_sizes.append(len(kb))
            for method, scored in run.plain(q, kb).items():
                rows[method].append(scored)
            case = run.case(q, kb)
            cases[key].append(case)
            rows["labelgate"].append(dm.reranked(case, weights, run.opt.k))
            same = q.views[REVIEWED] == q.views["labelgate"]
            reviewed = rows["labelgate"][-1] if same else dm.reranked(run.case(q, kb, REVIEWED), weights, run.opt.k)
            rows[REVIEWED].append(reviewed)
        for method in METHODS:
            results[method][key] = dm.mean_metrics(rows[method])
        sizes[key] = round(float(np.mean(kb_sizes)), 1) if kb_sizes else 0.0
    return {"results": results, "kb_docs": sizes}, cases


def ablation(
    cases: dict[str, list[dm.RerankCase]], weights: dict[str, float], k: int, before: dict[str, float] | None = None
) -> dict[str, Any]:
    """labelgate with its weights, without the label term, without the keyword term, semantic only, and (after
    tuning) with the weights the settings had."""
    variants = {
        **({"settings": before} if before is not None else {}),
        "full": weights,
        "no_label": weights | {"label": 0.0},
        "no_keyword": weights | {"keyword": 0.0},
        "semantic_only": {"semantic": 1.0, "label": 0.0, "keyword": 0.0},
    }
    return {
        name: {key: dm.mean_metrics([dm.reranked(c, w, k) for c in group]) for key, group in cases.items()}
        for name, w in variants.items()
    }


def summary(results: dict[str, Any], growth: Sequence[float], k: int) -> dict[str, Any]:
    """Per method: recall@k and purity@k at the first and last growth, and the loss in points."""
    first, last = growth_key(growth[0]), growth_key(growth[-1])
    out: dict[str, Any] = {}
    for method, by_growth in results.items():
        r0, r1 = by_growth[first][f"recall@{k}"], by_growth[last][f"recall@{k}"]
        out[method] = {
            f"recall@{k}_first": r0,
            f"recall@{k}_last": r1,
            "recall_loss_points": round(100 * (r0 - r1), 2),
            f"purity@{k}_last": by_growth[last][f"purity@{k}"],
        }
    out["targets"] = {
        method: {
            "recall_loss_le_1_point": out[method]["recall_loss_points"] <= 1.0,
            f"purity@{k}_ge_0.98": out[method][f"purity@{k}_last"] >= 0.98,
            "loses_less_than_dense": out[method]["recall_loss_points"] < out["dense"]["recall_loss_points"],
        }
        for method in ("labelgate", REVIEWED)
    }
    return out


def run_drift_eval(settings: Settings, src: Path, options: DriftOptions | None = None) -> dict[str, Any]:
    """Label, embed, grow and score; the JSON report (keys in the README)."""
    opt = options or DriftOptions()
    opt.check()
    started = time.perf_counter()
    data = load_retrieval(src, doc_id_sep=opt.doc_id_sep)
    if opt.current_voters and not data.native:
        raise ConfigError("--current-voters needs a labelgate data dir (its taxonomy is the voters' taxonomy)")
    labelled = label_everything(settings, data, opt, cache_dir=settings.home / "eval" / "cache")
    run = DriftRun(data, labelled, settings, opt)
    if opt.soft:  # the cold start: trust measured on held-out docs' query-like passages (--tune measures on queries)
        run.reliability = dict(labelled.report.get("cold_start", {}).get("reliability", {}))
    chosen = list(range(len(data.queries)))[: opt.max_queries]
    tuning: dict[str, Any] = {}
    weights = settings.rerank.model_dump()
    if opt.tune:
        dev_idx, test_idx = split_queries(len(chosen), opt.dev_share, opt.seed)
        run.reliability = reliability(data, labelled, [chosen[i] for i in dev_idx]) if opt.soft else {}
        dev, _ = run.queries([chosen[i] for i in dev_idx])
        dev_scored, dev_cases = evaluate(run, dev, weights)
        flat = [case for group in dev_cases.values() for case in group]
        objective = f"ndcg@{opt.k}"
        # never cost recall: only weights whose dev recall@k reaches dense's at every growth step compete
        floor = {g: by[f"recall@{opt.k}"] for g, by in dev_scored["results"]["dense"].items()}
        grid = dm.weight_grid(LABEL_GRID, KEYWORD_GRID)
        best, score, met = dm.tune_with_floor(dev_cases, floor, grid, k=opt.k, objective=objective)
        before = float(np.mean([dm.reranked(c, weights, opt.k)[objective] for c in flat]))
        tuning = {
            "query_label_reliability": run.reliability,
            "objective": objective,
            "recall_floor": "dense recall@k on dev at every growth step",
            "recall_floor_met": met,
            "dev_queries": len(dev),
            "settings_weights": weights,
            "settings_dev_score": round(before, 6),
            "weights": dm.normalised(best),
            "dev_score": round(score, 6),
            "grid": {"label": list(LABEL_GRID), "keyword": list(KEYWORD_GRID), "semantic": [1.0]},
        }
        weights = dm.normalised(best)
        chosen = [chosen[i] for i in test_idx]
    queries, skipped = run.queries(chosen)
    if not queries:
        raise DataError(f"{src}: no query can be evaluated (each needs relevant docs and room to grow {opt.growth})")
    scored, cases = evaluate(run, queries, weights)
    tuning["ablation"] = ablation(cases, weights, opt.k, tuning.get("settings_weights"))
    return {
        "dataset": str(src),
        "growth": [growth_key(g) for g in opt.growth],
        "k": opt.k,
        "fetch_k": opt.fetch_k,
        "base_docs": opt.base_docs,
        "queries": len(queries),
        "queries_skipped": len(skipped),
        "split": "test (dev used for --tune)" if opt.tune else "all",
        "doc_label_source": "gold" if opt.gold_doc_labels else "voters",
        "level": opt.level,
        "doc_id_sep": opt.doc_id_sep,
        "rerank_weights": weights,
        **scored,
        "drift": summary(scored["results"], opt.growth, opt.k),
        "labels": labelled.report,
        "tuning": tuning,
        "query_label_reliability": run.reliability,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
