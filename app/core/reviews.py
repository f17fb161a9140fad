"""Review payloads and resume validation, shared by the review node and the Python API/CLI."""

from __future__ import annotations

from typing import Any

from app.core.errors import ReviewError
from app.core.taxonomy import Taxonomy


def validate_resume(value: Any, taxonomy: Taxonomy) -> tuple[list[str], str]:
    """A resume value must be {"labels": [known label ids, ≥1], "reviewer": non-empty string}."""
    if not isinstance(value, dict):
        raise ReviewError('resume value must be an object like {"labels": ["屏幕"], "reviewer": "alice"}')
    reviewer = value.get("reviewer")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ReviewError("a reviewer identity is required to confirm labels")
    labels = value.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ReviewError("'labels' must be a non-empty list of label ids")
    known, unknown = taxonomy.split_known(x.strip() for x in labels)
    if unknown:
        raise ReviewError(f"unknown labels {unknown}; allowed: {taxonomy.ids}")
    return taxonomy.expand(known), reviewer.strip()


def candidate_table(state: dict[str, Any], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Each candidate label with its sources (voter probabilities, LLM, rules, `proposed` when the escalation path's
    proposal holds it) and a mean voter score."""
    votes = state.get("votes", {})
    rule_labels: dict[str, list[str]] = {}
    for hit in state.get("rule_hits", []):
        for label in hit["labels"]:
            rule_labels.setdefault(label, []).append(hit["rule"])
    proposal = state.get("proposal", [])
    names = dict.fromkeys([*proposal, *state.get("candidates", []), *state.get("llm_labels", []), *rule_labels])
    rows = []
    for label in taxonomy.expand(names):
        sources = [
            f"{name}:{rec['probs'].get(label, 0.0):.2f}" + ("✓" if label in rec["accepted"] else "")
            for name, rec in sorted(votes.items())
        ]
        if label in state.get("llm_labels", []):
            sources.append("llm")
        sources += [f"rule:{rule}" for rule in rule_labels.get(label, [])]
        if label in proposal:
            sources.append("proposed")
        score = sum(rec["probs"].get(label, 0.0) for rec in votes.values()) / max(len(votes), 1)
        rows.append({"label": label, "sources": sources, "score": round(score, 4)})
    return sorted(rows, key=lambda row: -row["score"])


def review_payload(state: dict[str, Any], taxonomy: Taxonomy, error: str | None = None) -> dict[str, Any]:
    candidates = candidate_table(state, taxonomy)
    payload = {
        "query": state["query"],
        "candidates": candidates,
        "proposed": list(state.get("proposal", [])),  # the set the review page starts from
        "reasons": state.get("reasons", []),
        # what actually happened: answered already (after_answer) or blocked until a person confirms (before_answer)
        "mode": "after_answer" if state.get("answer_kind") else "before_answer",
        "allowed_labels": taxonomy.ids,
        "resume_with": {"labels": ["<label id>", "..."], "reviewer": "<your name>"},
    }
    if error:
        payload["error"] = error
    return payload
