"""rerank: one explained score per doc = semantic similarity + label term + keyword overlap (weights in settings).

The label term is the label match weighted by trust (app/core/softgate.py): a doc is pushed down only when both the
query's labels and the doc's labels are trusted and they do not match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.config import RerankWeights
from app.core.ranking import fuse, keyword_overlap, label_match, minmax
from app.core.softgate import doc_confidence, label_term, query_trust, tree_match
from app.core.taxonomy import Taxonomy
from app.core.textutil import terms
from graph.options import NO_OPTIONS, RunOptions
from graph.state import State


def query_label_probs(state: State) -> dict[str, float]:
    """The voters' mean probability per label; labels fixed by a person, the LLM or the voters count as 1.0."""
    votes = list(state.get("votes", {}).values())
    probs: dict[str, float] = {}
    for rec in votes:
        for label, p in rec["probs"].items():
            probs[label] = probs.get(label, 0.0) + p / len(votes)
    for label in state.get("labels", []):
        probs[label] = 1.0
    return probs


class Rerank:
    def __init__(
        self,
        taxonomy: Taxonomy,
        weights: RerankWeights,
        *,
        top_k: int,
        soft: bool = True,
        reliability: Mapping[str, float] | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.weights, self.fuse_weights = weights, weights.model_dump()  # the settings' weights, dumped once
        self.top_k = top_k
        self.soft = soft
        self.reliability = dict(reliability or {})  # label source → measured exactness (Components.label_reliability)

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        top_k = options.top_k or self.top_k
        merged = options.rerank(self.weights)
        weights = self.fuse_weights if merged is self.weights else merged.model_dump()
        docs = state.get("docs", [])
        if not docs:
            return {"docs": []}
        probs = query_label_probs(state)
        source, confidence = state.get("label_source", ""), state.get("confidence", 0.0)
        trust = query_trust(source, confidence, reliability=self.reliability) if self.soft else 1.0
        query_terms = terms(state["query"])
        semantic = minmax([doc["scores"]["semantic"] for doc in docs])
        ranked: list[dict[str, Any]] = []
        for doc, sem in zip(docs, semantic, strict=True):
            match = (tree_match if self.soft else label_match)(doc["labels"], probs, self.taxonomy)
            sure = doc_confidence(doc.get("label_source", "given"), doc.get("label_confidence")) if self.soft else 1.0
            lab = label_term(match, trust, sure)
            kw = keyword_overlap(query_terms, terms(doc["title"] + " " + doc["text"]))
            scores = {
                **doc["scores"],
                "semantic_norm": round(sem, 4),
                "label_match": round(match, 4),
                "label_trust": round(trust * sure, 4),
                "label": round(lab, 4),
                "keyword": round(kw, 4),
                "fused": round(fuse(sem, lab, kw, weights=weights), 4),
            }
            ranked.append({**doc, "scores": scores})
        ranked.sort(key=lambda doc: -doc["scores"]["fused"])
        top = ranked[:top_k]
        admitted = sum(doc.get("stage") == "admitted" for doc in top)
        if not admitted:
            return {"docs": top}
        return {"docs": top, "reasons": [f"admitted_in_top_k:{admitted}"]}
