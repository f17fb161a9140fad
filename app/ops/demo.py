"""`labelgate demo`: the seed's drift example measured with our embeddings, then sample questions through the graph."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.data import DemoData, Doc, load_docs, load_samples
from app.core.kb import KnowledgeBase, ephemeral_client
from app.core.ranking import purity
from app.service.api import Answer, Assistant
from graph.state import apply_update
from nodes.rerank import Rerank
from nodes.retrieve import Retrieve

SEED_QUERY = "我的手机屏幕裂了，保修可以换吗？"
SEED_IDS = ("D1", "D2", "D3", "D4", "D5", "D6")


def dense_top(kb: KnowledgeBase, query: str, docs: Sequence[Doc], k: int = 3) -> list[str]:
    """Exact dense ranking (cosine of e5 embeddings, no labels) of `docs` for the query."""
    vectors = kb.embedder.encode([kb.passage_prefix + doc.text for doc in docs])
    scores = vectors @ kb.embed_query(query)
    return [docs[i].id for i in np.argsort(-scores)[:k]]


def gated_top_over(assistant: Assistant, state: dict[str, Any], docs: Sequence[Doc], k: int = 3) -> list[str]:
    """The graph's own retrieve + rerank nodes with the query's final labels, over a KB of just `docs`."""
    c = assistant.components
    small = KnowledgeBase.open(
        ephemeral_client(),
        f"demo-{uuid.uuid4().hex[:8]}",
        c.kb.embedder,
        query_prefix=c.kb.query_prefix,
        passage_prefix=c.kb.passage_prefix,
    )
    small.index(docs, c.taxonomy, chunk_chars=c.settings.chunk_chars)
    trust = c.label_reliability()
    retrieve = Retrieve(small, c.taxonomy, top_k=k, fetch_k=c.settings.fetch_k, reliability=trust)
    state = apply_update(state, retrieve(state))  # type: ignore[arg-type]
    rerank = Rerank(c.taxonomy, c.settings.rerank, top_k=k, reliability=trust)
    state = apply_update(state, rerank(state))  # type: ignore[arg-type]
    return [doc["doc_id"] for doc in state["docs"]]


def _coarse(assistant: Assistant, labels: Sequence[str]) -> list[str]:
    return [label for label in labels if label in assistant.components.taxonomy.coarse_ids]


def run_demo(assistant: Assistant, *, resolve_reviews: bool = True) -> dict[str, Any]:
    # The demo's reviewer picks the top candidates: not a real confirmation, so nothing goes to the feedback store.
    c = dataclasses.replace(assistant.components, feedback=None)
    assistant = Assistant(c, checkpointer=assistant.checkpointer)
    data = DemoData(c.settings.data_dir)
    all_docs = load_docs(data.docs, c.taxonomy)
    by_id = {doc.id: doc for doc in all_docs}
    seed_docs = [by_id[i] for i in SEED_IDS]
    seed = assistant.ask(SEED_QUERY)
    seed_state = dict(assistant.graph.get_state(assistant._config(seed.thread_id)).values)
    reference = _coarse(assistant, seed.labels) or ["售后"]
    vector = c.kb.embed_query(SEED_QUERY)
    dense_full_hits = c.kb.search(vector, partitions=None, n=3)
    dense_full = [hit.doc_id for hit in dense_full_hits]
    gated_full = [doc["doc_id"] for doc in seed.docs]
    label_of = {doc.id: list(doc.labels) for doc in all_docs}
    result: dict[str, Any] = {
        "query": SEED_QUERY,
        "query_labels": seed.labels,
        "query_decision": seed.decision,
        "purity_reference": reference,
        "dense_top3_before": dense_top(c.kb, SEED_QUERY, seed_docs[:3]),
        "dense_top3_after": dense_top(c.kb, SEED_QUERY, seed_docs),
        "gated_top3_after": gated_top_over(assistant, seed_state, seed_docs) if seed.labels else [],
        "dense_top3_full": dense_full,
        "gated_top3_full": gated_full,
        "dense_purity_full": purity([label_of.get(i, []) for i in dense_full], reference),
        "gated_purity_full": purity([label_of.get(i, []) for i in gated_full], reference),
        "kb_docs": len(all_docs),
        "samples": [],
    }
    for sample in load_samples(data.samples):
        answer = assistant.ask(sample["text"])
        entry = _sample(answer, sample["note"])
        if answer.pending_review and resolve_reviews:
            top = [row["label"] for row in answer.review.get("candidates", [])[:2]] or [c.taxonomy.oos_label or "其他"]
            resolved = assistant.resume(answer.thread_id, labels=top, reviewer="demo-reviewer")
            entry["resolved"] = _sample(resolved, "resolved in the demo as reviewer 'demo-reviewer' (top candidates)")
        result["samples"].append(entry)
    return result


def _sample(answer: Answer, note: str) -> dict[str, Any]:
    return answer.summary() | {
        "note": note,
        "candidates": [row["label"] for row in answer.review.get("candidates", [])] if answer.pending_review else [],
        "docs": [doc["doc_id"] for doc in answer.docs],
    }


def format_demo(result: dict[str, Any]) -> str:
    """The human-readable report of run_demo."""
    lines = [
        f"Seed query: {result['query']}",
        f"  labelgate labels: {', '.join(result['query_labels']) or '-'} (decision: {result['query_decision']})",
        "",
        "Dense retrieval only (cosine of e5 embeddings, no labels):",
        f"  over D1–D3 (before growth)  : {result['dense_top3_before']}",
        f"  over D1–D6 (seed's growth)  : {result['dense_top3_after']}   (the seed reports D4, D1, D5)",
        f"  over the whole KB ({result['kb_docs']} docs): {result['dense_top3_full']}",
        "labelgate (label filter + rerank):",
        f"  over D1–D6                  : {result['gated_top3_after']}",
        f"  over the whole KB           : {result['gated_top3_full']}",
        f"Label purity@3 on the whole KB (share of top-3 labelled {'/'.join(result['purity_reference'])}): "
        f"dense {result['dense_purity_full']:.2f} → gated {result['gated_purity_full']:.2f}",
        "",
        "Sample questions:",
    ]
    for i, s in enumerate(result["samples"], 1):
        lines += _format_sample(i, s)
    return "\n".join(lines)


def _format_sample(i: int, s: dict[str, Any]) -> list[str]:
    path = " → ".join(s["path"]) + (" (paused)" if s["pending_review"] else "")
    lines = [
        f"{i}. {s['query']}" + (f"   — {s['note']}" if s["note"] else ""),
        f"   labels: {', '.join(s['labels']) or '-'} [{s['label_source'] or 'none yet'}]  decision: {s['decision']}",
        f"   path: {path}",
        f"   reasons: {', '.join(s['reasons'])}",
    ]
    if s["pending_review"]:
        lines.append(f"   pending review, candidates: {', '.join(s['candidates'])}")
        if "resolved" in s:
            r = s["resolved"]
            lines += [
                f"   → resumed by demo-reviewer with {', '.join(r['labels'])}: {' → '.join(r['path'])}",
                f"   docs: {r['docs']}",
                "   answer: " + r["answer"].replace("\n", "\n           "),
            ]
    else:
        lines += [f"   docs: {s['docs']}", "   answer: " + s["answer"].replace("\n", "\n           ")]
    return lines
