"""retrieve: Chroma search pre-filtered by the final labels, widening fine → coarse → unfiltered below k hits; with
soft gating (default) the best unfiltered chunks whose labels a machine gave (index-time voters) are admitted too —
every chunk when the query's labels are unreliable — and the rerank's trust-weighted label term decides
(app/core/softgate.py: a filter is a prior, not a wall)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.core.kb import Hit, KnowledgeBase, KnowledgeBaseError
from app.core.ranking import filter_plan, widen
from app.core.softgate import ADMIT_GIVEN_BELOW, admissible, admit, query_trust
from app.core.taxonomy import Taxonomy
from graph.options import NO_OPTIONS, RunOptions
from graph.state import State

log = logging.getLogger(__name__)


class Retrieve:
    def __init__(
        self,
        kb: KnowledgeBase,
        taxonomy: Taxonomy,
        *,
        top_k: int,
        fetch_k: int,
        soft: bool = True,
        reliability: Mapping[str, float] | None = None,
    ) -> None:
        self.kb = kb
        self.taxonomy = taxonomy
        self.top_k = top_k
        self.fetch_k = max(fetch_k, top_k)
        self.soft = soft
        self.reliability = dict(reliability or {})  # as the rerank's: how far the query's labels may be trusted

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        top_k = options.top_k or self.top_k
        fetch_k = max(options.fetch_k or self.fetch_k, top_k)
        stages = filter_plan(state.get("labels", []), self.taxonomy)
        try:
            vector = self.kb.embed_query(state["query"])
            stage_hits: list[list[tuple[str, Hit]]] = []
            for stage in stages:
                hits = self.kb.search(vector, partitions=stage.partitions(self.taxonomy), n=fetch_k)
                stage_hits.append([(stage.name, hit) for hit in hits])
                if len({hit.id for found in stage_hits for _, hit in found}) >= top_k:
                    break
            searched_all = any(stage.labels == () for stage in stages[: len(stage_hits)])
            trust = query_trust(
                state.get("label_source", ""), state.get("confidence", 0.0), reliability=self.reliability
            )
            unsure = trust < ADMIT_GIVEN_BELOW
            # one more (unfiltered) query, ~3 ms at 100k chunks: only when it can admit something
            admit_dense = self.soft and not searched_all and (unsure or self.kb.has_machine_labels())
            unfiltered = self.kb.search(vector, partitions=None, n=fetch_k) if admit_dense else []
        except KnowledgeBaseError as exc:
            log.warning("retrieval failed: %s", exc)
            return {
                "docs": [],
                "filter_used": {},
                "widened": False,
                "reasons": ["retrieve_failed:kb_unavailable"],
            }
        merged, last = widen(stage_hits, top_k, key=lambda pair: pair[1].id)
        candidates = [("admitted", hit) for hit in unfiltered if admissible(hit.label_source, trust)]
        merged, admitted = admit(merged, candidates, key=lambda pair: pair[1].id)
        used = stages[min(last, len(stage_hits) - 1)]
        docs = [
            {
                "chunk_id": hit.id,
                "doc_id": hit.doc_id,
                "title": hit.title,
                "text": hit.text,
                "labels": hit.labels,
                "label_source": hit.label_source,
                **({"label_confidence": hit.label_confidence} if hit.label_confidence is not None else {}),
                "stage": stage,
                "scores": {"semantic": hit.similarity},
            }
            for stage, hit in merged
        ]
        reasons = [] if docs else ["retrieve_empty:kb_has_no_docs"]
        widened = last > 0
        if widened:
            reasons.append(f"widened_to:{used.name}")
        if admitted:
            reasons += [
                f"admitted_unfiltered:{admitted}",
                *(["admitted_author_labelled:query_unsure"] if unsure else []),
            ]
        return {
            "docs": docs,
            "widened": widened,
            "reasons": reasons,
            "filter_used": {
                "stage": stages[0].name,
                "labels": list(stages[0].labels),
                "widened_to": used.name if widened else None,
                "admitted": admitted,  # unfiltered candidates admitted beside the filtered ones (soft gating)
            },
        }
