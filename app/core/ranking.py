"""Retrieval math: label filters and their widening order, and the fused rerank score. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.core.taxonomy import Taxonomy

T = TypeVar("T")


@dataclass(frozen=True)
class FilterStage:
    name: str  # "fine" | "coarse" | "none"
    labels: tuple[str, ...]

    def partitions(self, taxonomy: Taxonomy) -> tuple[str, ...] | None:
        """The label partitions to search for this stage; None = the whole collection."""
        return partitions_matching(self.labels, taxonomy) if self.labels else None


def chunk_partitions(labels: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    """The label partitions a chunk is stored in: each fine label, and a coarse label only when the chunk carries none
    of its children. With `partitions_matching` this equals the metadata filter "carries any of the stage's labels"
    for parent-closed label sets, while a chunk is stored about 1.3 times instead of once per label."""
    return taxonomy.fine_only(labels)


def partitions_matching(labels: Sequence[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    """Partitions holding every chunk that carries any of `labels`: a fine label's own; a coarse label's own plus its
    children's."""
    keys: dict[str, None] = {}
    for label in labels:
        if label not in taxonomy:
            continue
        keys[label] = None
        if taxonomy[label].is_coarse:
            keys.update(dict.fromkeys(f for f in taxonomy.fine_ids if taxonomy.coarse_of(f) == label))
    return tuple(keys)


def filter_plan(labels: Sequence[str], taxonomy: Taxonomy) -> list[FilterStage]:
    """Fine labels first, then their coarse parents, then no filter; stages that add nothing are skipped."""
    fine = tuple(taxonomy.fine_only(labels))
    coarse = tuple(dict.fromkeys(taxonomy.coarse_of(label) for label in fine))
    stages = []
    if fine:
        stages.append(FilterStage("fine", fine))
    if coarse and set(coarse) != set(fine):
        stages.append(FilterStage("coarse", coarse))
    stages.append(FilterStage("none", ()))
    return stages


def widen(stage_hits: Sequence[Sequence[T]], k: int, key: Callable[[T], Hashable]) -> tuple[list[T], int]:
    """Merge hit lists stage by stage until k distinct hits; returns (hits, index of the last stage used).

    Earlier stages' hits always stay, in their order: widening never drops a doc.
    """
    merged: list[T] = []
    seen: set[Hashable] = set()
    last = 0
    for index, hits in enumerate(stage_hits):
        last = index
        for hit in hits:
            if key(hit) not in seen:
                seen.add(key(hit))
                merged.append(hit)
        if len(merged) >= k:
            break
    return merged, last


def minmax(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1] within the candidate list; equal values all map to 1.0."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [1.0] * len(values)
    return [(v - low) / (high - low) for v in values]


def label_match(doc_labels: Sequence[str], query_probs: Mapping[str, float], taxonomy: Taxonomy) -> float:
    """How strongly the query wants this doc's labels: the highest query probability among the doc's fine labels
    (its coarse labels when it has no fine ones)."""
    labels = taxonomy.fine_only([label for label in doc_labels if label in taxonomy])
    return max((float(query_probs.get(label, 0.0)) for label in labels), default=0.0)


def keyword_overlap(query_terms: Sequence[str], doc_terms: Sequence[str]) -> float:
    """Share of the query's distinct terms that occur in the doc."""
    wanted = set(query_terms)
    if not wanted:
        return 0.0
    return len(wanted & set(doc_terms)) / len(wanted)


def fuse(semantic: float, label: float, keyword: float, *, weights: Mapping[str, float]) -> float:
    """Weighted sum of the three components (each in [0, 1])."""
    return weights["semantic"] * semantic + weights["label"] * label + weights["keyword"] * keyword


def purity(doc_labels: Sequence[Sequence[str]], reference: Sequence[str]) -> float:
    """Share of docs carrying at least one reference label (1.0 for no docs is wrong: 0.0)."""
    if not doc_labels:
        return 0.0
    wanted = set(reference)
    return sum(1 for labels in doc_labels if wanted & set(labels)) / len(doc_labels)
