"""Graph state: the small input a caller (or Studio) passes, and the full JSON-serialisable state."""

from __future__ import annotations

from typing import Any, Required

from typing_extensions import TypedDict  # pydantic builds JSON schemas (Studio) only from this one on 3.11


class InputState(TypedDict, total=False):
    """What a caller passes: the query, optionally who asks."""

    query: Required[str]
    user: str


class VoteRecord(TypedDict):
    probs: dict[str, float]
    accepted: list[str]
    thresholds: dict[str, float]
    version: str


class DocRecord(TypedDict, total=False):
    id: str  # chunk id
    doc_id: str
    title: str
    text: str
    labels: list[str]
    label_source: str  # given (by its author) | voters (labelled at index time)
    label_confidence: float  # voters' labels only: how sure they are (app/core/doclabels.py)
    stage: str  # filter stage that found it: fine | coarse | none | admitted (unfiltered, soft gating)
    scores: dict[str, float]  # semantic, semantic_norm, label_match, label, keyword, fused


class State(InputState, total=False):
    votes: dict[str, VoteRecord]
    decision: str  # auto | escalate
    route: str  # auto | escalate | confirmed | provisional (answer now, review after) | review | reviewed
    labels: list[str]  # final labels (fine + coarse parents)
    label_source: str  # voters | llm+rules | llm+voter | provisional (coarse, pending review) | human
    confidence: float
    candidates: list[str]
    reasons: list[str]  # machine-readable, appended by each node
    llm_labels: list[str]
    entities: dict[str, str]
    rule_hits: list[dict[str, Any]]
    review: dict[str, Any]  # {status: resolved, reviewer, labels, mode: before_answer | after_answer}
    filter_used: dict[str, Any]  # {stage, labels, where}
    widened: bool
    docs: list[DocRecord]
    answer: str
    answer_kind: str  # llm | passages | no_docs
    citations: list[str]


def add_reasons(state: State, *reasons: str) -> list[str]:
    """A node's new reasons appended to the state's, as a fresh list (nodes return partial updates)."""
    return [*state.get("reasons", []), *reasons]
