"""The rerank's label term is weighted by trust: none = the semantic (+ keyword) order; a confident mismatch sinks."""

from __future__ import annotations

from typing import Any

from app.core.config import RerankWeights
from app.core.taxonomy import Label, Taxonomy
from nodes.rerank import Rerank

TAX = Taxonomy((Label("售后"), Label("销售"), Label("屏幕", parent="售后"), Label("活动优惠", parent="销售")))
WEIGHTS = RerankWeights(semantic=0.4, label=0.6, keyword=0.0)


def doc(cid: str, labels: list[str], similarity: float, **extra: Any) -> dict[str, Any]:
    return (
        {"chunk_id": cid, "doc_id": cid, "title": "", "text": cid, "labels": labels, "stage": "fine"}
        | extra
        | {"scores": {"semantic": similarity}}
    )


DOCS = [
    doc("ad", ["销售", "活动优惠"], 0.90, label_source="voters", label_confidence=0.9, stage="admitted"),
    doc("unsure", ["销售", "活动优惠"], 0.85, label_source="voters", label_confidence=0.0, stage="admitted"),
    doc("screen", ["售后", "屏幕"], 0.80),
]


def ranked(**state: Any) -> tuple[list[str], list[str]]:
    out = Rerank(TAX, WEIGHTS, top_k=3)({"query": "x", "docs": DOCS, "reasons": []} | state)  # type: ignore[arg-type]
    return [d["chunk_id"] for d in out["docs"]], out.get("reasons", [])


def test_no_trust_in_the_query_labels_keeps_the_semantic_order() -> None:
    order, reasons = ranked(labels=["售后", "屏幕"], label_source="voters", confidence=0.0)
    assert order == ["ad", "unsure", "screen"] and reasons == ["admitted_in_top_k:2"]


def test_trusted_labels_sink_a_confident_mismatch_but_not_an_unsure_one() -> None:
    order, _ = ranked(labels=["售后", "屏幕"], label_source="human")
    assert order == ["unsure", "screen", "ad"]
    out = Rerank(TAX, WEIGHTS, top_k=3, soft=False)({"query": "x", "docs": DOCS, "labels": ["售后", "屏幕"]})  # type: ignore[arg-type]
    assert out["docs"][0]["chunk_id"] == "screen"  # without soft gating every doc's labels are trusted


def test_the_measured_reliability_of_the_voters_scales_their_labels_trust() -> None:
    state = {"query": "x", "docs": DOCS, "labels": ["售后", "屏幕"], "label_source": "voters", "confidence": 1.0}

    def trust(rerank: Rerank, **extra: Any) -> float:
        out = rerank({**state, **extra})  # type: ignore[arg-type]
        return next(d["scores"]["label_trust"] for d in out["docs"] if d["chunk_id"] == "screen")

    assert trust(Rerank(TAX, WEIGHTS, top_k=3)) == 1.0  # unmeasured: full trust, as before
    assert trust(Rerank(TAX, WEIGHTS, top_k=3, reliability={"voters": 0.6})) == 0.6
    # a person's labels (or the LLM's confirmed) are trusted whatever the voters' record
    assert trust(Rerank(TAX, WEIGHTS, top_k=3, reliability={"voters": 0.6}), label_source="human") == 1.0


def test_components_read_the_reliability_the_training_measured(components) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    assert components.label_reliability() == {}  # voters trained before it was measured: full trust
    measured = [
        dataclasses.replace(v, meta={**v.meta, "gate_reliability": r})
        for v, r in zip(components.voters, (0.9, 0.8), strict=True)
    ]
    assert dataclasses.replace(components, voters=measured).label_reliability() == {"voters": 0.8}
    both = [dataclasses.replace(v, meta={**v.meta, "provisional_reliability": 0.6}) for v in measured]
    assert dataclasses.replace(components, voters=both).label_reliability() == {"voters": 0.8, "provisional": 0.6}
