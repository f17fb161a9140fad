"""The drift benchmark's math (pure numpy, property-tested): each query's growing knowledge base, ranking inside it,
the label-gated stages with widening, the fused rerank, retrieval metrics and the rerank weight search."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from app.core.ranking import fuse, widen

COMPONENTS = ("semantic", "label", "keyword")


@dataclass(frozen=True)
class Pool:
    """One query's knowledge base: `base` (its relevant docs, hard negatives, docs of its own labels) and `others`
    (docs sharing none of its labels) in the order growth adds them — so growth g's KB contains growth g' < g's."""

    base: np.ndarray
    others: np.ndarray

    def kb(self, growth: float) -> np.ndarray:
        return np.concatenate([self.base, self.others[: round(growth * len(self.base))]])


def growth_pool(
    shares: np.ndarray,
    eligible: np.ndarray,
    relevant: Sequence[int],
    hard_negatives: Sequence[int],
    *,
    base_docs: int,
    max_growth: float,
    rng: np.random.Generator,
) -> Pool | None:
    """The query's pool, or None when even its relevant docs times `max_growth` exceed the other-label docs.

    `shares[i]`: doc i carries one of the query's labels; `eligible[i]`: doc i may enter a KB (not a training doc).
    The base holds every relevant doc, then hard negatives, then a sample of same-label docs, up to `base_docs` and
    to what the other-label docs can grow `max_growth` times."""
    fixed = np.zeros(len(shares), dtype=bool)
    fixed[list(relevant)] = True
    fixed[list(hard_negatives)] = True
    others = np.flatnonzero(~shares & eligible & ~fixed)
    rng.shuffle(others)
    cap = len(shares) if max_growth <= 0 else math.floor(len(others) / max_growth)  # no growth: no limit
    target = min(base_docs, cap)
    rel = list(dict.fromkeys(relevant))
    if len(rel) > cap or not rel:
        return None
    hard = [i for i in dict.fromkeys(hard_negatives) if i not in set(rel)]
    base = rel + hard[: max(0, target - len(rel))]
    same = np.flatnonzero(shares & eligible & ~fixed)
    rng.shuffle(same)
    base += same[: max(0, target - len(base))].tolist()
    return Pool(np.array(base, dtype=np.int64), others)


def top(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the highest scores, best first (ties: lower index first)."""
    if k <= 0 or not len(candidates):
        return candidates[:0]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def carries_any(label_matrix: np.ndarray, docs: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """The docs (indices) whose label row has any of `labels` (label indices)."""
    if not len(labels) or not len(docs):
        return docs[:0]
    return docs[label_matrix[np.ix_(docs, np.asarray(labels, dtype=np.int64))].any(axis=1)]


def staged(
    scores: np.ndarray,
    kb: np.ndarray,
    label_matrix: np.ndarray,
    stages: Sequence[Sequence[int] | None],
    *,
    k: int,
    fetch_k: int,
) -> tuple[list[int], int]:
    """The product's widening over exact search: each stage's `fetch_k` best docs (None = no filter) are merged stage
    by stage until `k` distinct docs are found; (candidates, index of the last stage used)."""
    hits: list[list[int]] = []
    for stage in stages:
        pool = kb if stage is None else carries_any(label_matrix, kb, stage)
        hits.append(top(scores, pool, fetch_k).tolist())
        if len({d for found in hits for d in found}) >= k:
            break
    merged, last = widen(hits, k, key=lambda doc: doc)
    return merged, last


def minmax_array(values: np.ndarray) -> np.ndarray:
    """`app.core.ranking.minmax` on an array: [0, 1] within the candidates, equal values all 1.0."""
    if not len(values):
        return values.astype(float)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.ones(len(values))
    return (values - low) / (high - low)


def fused_order(components: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """Candidate positions by fused score, best first (ties: earlier candidate first); components: (n, 3)."""
    columns = np.asarray(components, dtype=float).reshape(-1, len(COMPONENTS)).T
    scores = np.asarray(fuse(*cast(tuple[float, float, float], tuple(columns)), weights=weights))  # elementwise
    return np.lexsort((np.arange(len(scores)), -scores))


def metrics(ranked: Sequence[int], relevant: Iterable[int], on_topic: Sequence[bool], k: int) -> dict[str, float]:
    """recall@k, MRR (reciprocal rank of the first relevant doc within k, else 0), binary nDCG@k and purity@k (share
    of the returned top k carrying one of the query's gold labels; 0 when nothing is returned)."""
    wanted = set(relevant)
    shown = list(ranked[:k])
    hits = [doc in wanted for doc in shown]
    first = next((i for i, hit in enumerate(hits) if hit), None)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), k)))
    return {
        f"recall@{k}": sum(hits) / len(wanted) if wanted else 0.0,
        "mrr": 0.0 if first is None else 1.0 / (first + 1),
        f"ndcg@{k}": dcg / ideal if ideal else 0.0,
        f"purity@{k}": sum(on_topic[: len(shown)]) / len(shown) if shown else 0.0,
    }


def by_document(
    ranked: Sequence[int], on_topic: Sequence[bool], owner: np.ndarray | None
) -> tuple[list[int], list[bool]]:
    """Ranked chunks as their documents (`owner[chunk]`), each at its best chunk's place; identity without owners."""
    if owner is None:
        return list(ranked), list(on_topic)
    docs: list[int] = []
    topical: list[bool] = []
    seen: set[int] = set()
    for chunk, flag in zip(ranked, on_topic, strict=True):
        doc = int(owner[chunk])
        if doc not in seen:
            seen.add(doc)
            docs.append(doc)
            topical.append(bool(flag))
    return docs, topical


def scored(
    ranked: Sequence[int], relevant: Iterable[int], on_topic: Sequence[bool], k: int, owner: np.ndarray | None = None
) -> dict[str, float]:
    """`metrics` of the top k; with `owner`, of the documents of the top k chunks (`relevant` names documents)."""
    docs, topical = by_document(list(ranked)[:k], list(on_topic)[:k], owner)
    return metrics(docs, relevant, topical, k)


@dataclass(frozen=True)
class RerankCase:
    """One query at one growth: the labelgate candidates, their rerank components and what counts as right."""

    candidates: np.ndarray  # doc indices in widening order
    components: np.ndarray  # (n, 3): semantic (min-max), label match, keyword overlap
    relevant: frozenset[int]
    on_topic: np.ndarray  # per candidate: carries one of the query's gold labels
    owner: np.ndarray | None = None  # chunk -> its document, when `relevant` names documents


def reranked(case: RerankCase, weights: Mapping[str, float], k: int) -> dict[str, float]:
    order = fused_order(case.components, weights)
    return scored(case.candidates[order].tolist(), case.relevant, case.on_topic[order].tolist(), k, case.owner)


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: round(float(np.mean([row[key] for row in rows])), 6) for key in rows[0]}


def weight_grid(label: Sequence[float], keyword: Sequence[float]) -> list[dict[str, float]]:
    """Semantic weight fixed at 1 (the fused order only depends on the ratios), every label × keyword weight."""
    return [{"semantic": 1.0, "label": a, "keyword": b} for a in label for b in keyword]


def tune(
    cases: Sequence[RerankCase], grid: Sequence[Mapping[str, float]], *, k: int, objective: str
) -> tuple[dict[str, float], float]:
    """The grid weights with the best mean `objective` metric over the cases (ties: the earlier grid point)."""
    if not cases or not grid:
        raise ValueError("tuning needs cases and a non-empty grid")
    best, best_score = dict(grid[0]), -1.0
    for weights in grid:
        score = float(np.mean([reranked(case, weights, k)[objective] for case in cases]))
        if score > best_score + 1e-12:
            best, best_score = dict(weights), score
    return best, best_score


def tune_with_floor(
    groups: Mapping[str, Sequence[RerankCase]],
    floor: Mapping[str, float],
    grid: Sequence[Mapping[str, float]],
    *,
    k: int,
    objective: str,
) -> tuple[dict[str, float], float, bool]:
    """`tune` under a recall floor: among the grid weights whose mean recall@k reaches `floor[g]` in every group g
    (growth step), the best mean `objective` over all cases; when none does, the weights that fall least below the
    floor at their worst group. (weights, mean objective, whether the floor was met)."""
    if not grid or not any(groups.values()):
        raise ValueError("tuning needs cases and a non-empty grid")
    best: tuple[bool, float, float] | None = None
    chosen: dict[str, float] = dict(grid[0])
    for weights in grid:
        scores = {g: [reranked(case, weights, k) for case in cases] for g, cases in groups.items() if cases}
        worst = min(float(np.mean([m[f"recall@{k}"] for m in rows])) - floor.get(g, 0.0) for g, rows in scores.items())
        value = float(np.mean([m[objective] for rows in scores.values() for m in rows]))
        met = worst >= -1e-9
        key = (met, value if met else worst, value)
        if best is None or key > best:
            best, chosen = key, dict(weights)
    assert best is not None
    return chosen, best[2], best[0]


def normalised(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights scaled to sum to one (same order of docs), rounded for reports and settings."""
    total = sum(weights.values()) or 1.0
    return {key: round(value / total, 4) for key, value in weights.items()}


def source_reliability(
    rows: Iterable[tuple[bool, Sequence[str], Sequence[str]]], fine: Callable[[Sequence[str]], Sequence[str]]
) -> dict[str, float]:
    """How often each query-label source is right, over (escalated, labels, gold expanded) rows: "voters", the
    automatic labels' exact leaf set (`fine` keeps a label set's leaves); "provisional", an escalation's coarse labels
    all among the gold ones. A source with no row is left out (its trust is then unmeasured)."""
    right: dict[str, list[bool]] = {"voters": [], "provisional": []}
    for escalated, labels, gold in rows:
        if escalated:
            right["provisional"].append(bool(labels) and set(labels) <= set(gold))
        else:
            right["voters"].append(set(fine(labels)) == set(fine(gold)))
    return {source: round(float(np.mean(ok)), 4) for source, ok in right.items() if ok}
