"""Graph state: the small input a caller (or Studio) passes, and the full JSON-serialisable state.

Conventions, once for every node:
- `reasons` has an append reducer: a node returns only its own new reasons (`{"reasons": ["vote:agree"]}`).
- A turn starts clean: `turn_reset()` (written by classify, the first node) sets back every field a previous turn on
  the same thread left, and replaces `reasons` instead of appending to them.
- Closed vocabularies are `Literal`s; "" means "not decided yet in this turn".
- A retrieved passage is a chunk: `chunk_id` names the chunk, `doc_id` the document it was cut from (what answers cite).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Required

from langgraph.types import Overwrite
from typing_extensions import TypedDict  # pydantic builds JSON schemas (Studio) only from this one on 3.11

Decision = Literal["", "auto", "escalate"]
# auto | escalate | confirmed (LLM + rules/voter) | provisional (answer now, review after) | review | reviewed
Route = Literal["", "auto", "escalate", "confirmed", "provisional", "review", "reviewed"]
# voters | llm+rules | llm+voter | provisional (coarse, pending review) | human | voters:coarse_unconfirmed (LangChain
# retriever: an escalated query filtered by its coarse candidates, app/service/lc/gate.py)
LabelSource = Literal["", "voters", "llm+rules", "llm+voter", "provisional", "human", "voters:coarse_unconfirmed"]
DocLabelSource = Literal["given", "voters"]  # given: by the doc's author (or a doc review) | voters: at index time
Stage = Literal["fine", "coarse", "none", "admitted"]  # admitted: unfiltered, let in by soft gating
AnswerKind = Literal["", "llm", "passages", "no_docs", "out_of_scope"]
ReviewMode = Literal["before_answer", "after_answer"]


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
    chunk_id: str  # the chunk retrieved (`<doc_id>` or `<doc_id>#<n>` for long docs)
    doc_id: str  # the document it belongs to: what the answer cites
    title: str
    text: str
    labels: list[str]
    label_source: DocLabelSource
    label_confidence: float  # voters' labels only: how sure they are (app/core/doclabels.py)
    stage: Stage  # filter stage that found it
    scores: dict[str, float]  # semantic, semantic_norm, label_match, label, keyword, fused


class State(InputState, total=False):
    votes: dict[str, VoteRecord]
    decision: Decision
    route: Route
    labels: list[str]  # final labels (fine + coarse parents)
    label_source: LabelSource
    confidence: float
    candidates: list[str]
    reasons: Annotated[list[str], operator.add]  # machine-readable; each node returns only its own
    llm_labels: list[str]
    proposal: list[str]  # the escalation path's best label set, from every opinion (app/core/proposal.py)
    entities: dict[str, str]
    rule_hits: list[dict[str, Any]]
    review: dict[str, Any]  # {status: resolved, reviewer, labels, mode: ReviewMode}
    filter_used: dict[str, Any]  # {stage, labels, where}
    widened: bool
    docs: list[DocRecord]
    answer: str
    answer_kind: AnswerKind
    citations: list[str]


# What a previous turn on the same thread leaves that must not leak into the next one.
_TURN_FIELDS: dict[str, Any] = {
    "decision": "",
    "route": "",
    "labels": [],
    "label_source": "",
    "confidence": 0.0,
    "candidates": [],
    "llm_labels": [],
    "proposal": [],
    "entities": {},
    "rule_hits": [],
    "review": {},
    "filter_used": {},
    "widened": False,
    "docs": [],
    "answer": "",
    "answer_kind": "",
    "citations": [],
}


def turn_reset(reasons: list[str]) -> dict[str, Any]:
    """The update that starts a turn: every per-turn field back to empty, `reasons` replaced by `reasons`."""
    return {
        **{k: v.copy() if isinstance(v, list | dict) else v for k, v in _TURN_FIELDS.items()},
        "reasons": Overwrite(reasons),
    }


def plain(update: Mapping[str, Any]) -> dict[str, Any]:
    """A node's update as plain data (an Overwrite unwrapped to its value): for traces and stream consumers."""
    return {k: v.value if isinstance(v, Overwrite) else v for k, v in update.items()}


def apply_update(state: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`state` after `update`, reduced as the graph reduces it (reasons appended unless overwritten): for code that
    runs nodes one after another without the graph (app/service/lc/gate.py, tests)."""
    out = dict(state)
    for key, value in update.items():
        if key == "reasons" and not isinstance(value, Overwrite):
            out[key] = [*out.get("reasons", []), *value]
        else:
            out[key] = value.value if isinstance(value, Overwrite) else value
    return out
