"""Soft gating: a label filter is a prior, not a wall. Pure functions, property-tested (test_softgate.py).

Retrieval takes the union of the label-filtered candidates and the best unfiltered (dense) ones whose labels a machine
gave (`admissible`: an author's labels are a wall only for query labels that are trusted — confirmed, or measured
that reliable); the rerank's label term then decides, weighted by how much the
query's labels and each doc's labels can be trusted:

    label_term = 1 - query_trust · doc_confidence · (1 - match)

A doc is pushed down only for a *confident* mismatch: with no trust in either side every doc's label term is 1 and
the order is the semantic (+ keyword) order over a candidate set that contains dense's top k — so, over a KB whose
labels a machine gave (the drift benchmark's case), recall@k cannot fall below dense's. With full trust on both
sides the term is the plain label match, as a hard filter would rank.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from app.core.ranking import label_match
from app.core.taxonomy import Taxonomy

T = TypeVar("T")


def clip01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def label_term(match: float, query_trust: float, doc_confidence: float) -> float:
    """The rerank's label component in [0, 1]: 1 - query_trust · doc_confidence · (1 - match)."""
    return 1.0 - clip01(query_trust) * clip01(doc_confidence) * (1.0 - clip01(match))


def admit(filtered: Sequence[T], dense: Sequence[T], key: Callable[[T], Hashable]) -> tuple[list[T], int]:
    """The filtered candidates in their order, then the dense candidates not among them; (merged, how many admitted).

    Never drops a candidate of either list (each at most once)."""
    merged: list[T] = []
    seen: set[Hashable] = set()
    for hit in filtered:
        if key(hit) not in seen:
            seen.add(key(hit))
            merged.append(hit)
    inside = len(merged)
    for hit in dense:
        if key(hit) not in seen:
            seen.add(key(hit))
            merged.append(hit)
    return merged, len(merged) - inside


CONFIRMED = frozenset({"human", "llm+rules", "llm+voter"})  # a person's labels, or the LLM's confirmed by a 2nd source
ADMIT_GIVEN_BELOW = 0.7  # query trust under which author-labelled docs join past the filter too


def admissible(doc_label_source: str, query_trust: float = 1.0) -> bool:
    """Which unfiltered candidates may join the filtered ones: docs whose labels a machine gave (they may be wrong;
    the rerank weighs them by their confidence) — and every doc unless the query's labels are trusted (at least
    ADMIT_GIVEN_BELOW: a person's, the LLM's confirmed by a second source, or the voters' where they were measured that
    reliable). A filter that may well be wrong must not be a wall: with the KB's own labels and queries labelled by
    the voters, a wall from trust 0.5 cost recall (demo, --gold-doc-labels, coarse: 0.991/0.962/0.962/0.962 at 0/1/3/10×
    vs dense 0.979/0.972/0.959/0.933; from 0.7: 0.991/0.984/0.984/0.984, purity@10 0.749 vs 0.778) and no wall below
    0.9 let the seed's marketing page (KB136, trust 0.80) top its after-sales answer. Trusted labels keep the wall:
    such a query never meets an author-labelled doc of another label."""
    return doc_label_source != "given" or query_trust < ADMIT_GIVEN_BELOW


def query_trust(label_source: str, confidence: float, *, reliability: Mapping[str, float] | None = None) -> float:
    """How far the rerank may trust the query's labels: 1 for confirmed labels (a person's, or the LLM's confirmed by a
    rule or a voter); for the voters' own the labels' confidence scaled by the measured reliability of that source
    (its exact accuracy on held-out rows; 1 when unmeasured)."""
    if label_source in CONFIRMED:
        return 1.0
    scale = (reliability or {}).get(label_source, 1.0)
    return clip01(confidence) * clip01(scale)


def doc_confidence(label_source: str, confidence: float | None) -> float:
    """How far the rerank may trust a chunk's labels: 1 for labels its author gave; a stored confidence for labels a
    machine gave (0 when missing: unknown labels never push a doc down)."""
    if label_source == "given":
        return 1.0
    return clip01(confidence) if confidence is not None else 0.0


SURE = 0.5  # a query label at least this probable is one the query asks for


def leaf_match(doc_labels: Sequence[str], query_probs: Mapping[str, float], taxonomy: Taxonomy) -> float:
    """How much of what the query asks for the doc's fine labels cover. A query sure of several fine labels (屏幕 and
    保修政策) gets their probability-weighted share the doc carries, so a doc with both outranks one with either; a
    query sure of one or none gets the highest probability among the doc's fine labels."""
    doc_fine = set(taxonomy.fine_only(doc_labels))
    sure = {q: float(p) for q, p in query_probs.items() if p >= SURE and q in taxonomy and not taxonomy[q].is_coarse}
    if len(sure) < 2:
        return label_match(list(doc_fine), query_probs, taxonomy)
    return sum(p for q, p in sure.items() if q in doc_fine) / sum(sure.values())


def tree_match(doc_labels: Sequence[str], query_probs: Mapping[str, float], taxonomy: Taxonomy) -> float:
    """Label match over the taxonomy's two levels, each counting half: the doc's cover of the query's fine labels
    (leaf_match), and the query's highest probability among the doc's coarse labels. A doc of the query's category but
    another topic matches half: only a doc of another category, confidently labelled, is pushed down all the way."""
    known = [label for label in doc_labels if label in taxonomy]
    leaf = leaf_match(known, query_probs, taxonomy)
    coarse = max((float(query_probs.get(taxonomy.coarse_of(x), 0.0)) for x in known), default=0.0)
    return (leaf + coarse) / 2
