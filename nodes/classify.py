"""classify: clean the query, run both voters once each, record per-label probabilities and accepted sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.textutil import clean_query
from app.voters.base import Voter
from graph.state import State

# Fields of a previous run on the same thread that must not leak into this one.
FRESH: dict[str, Any] = {
    "labels": [],
    "llm_labels": [],
    "entities": {},
    "rule_hits": [],
    "review": {},
    "docs": [],
    "citations": [],
    "answer": "",
    "answer_kind": "",
    "filter_used": {},
    "widened": False,
    "candidates": [],
    "label_source": "",
    "route": "",
}


class Classify:
    def __init__(self, voters: Sequence[Voter], *, max_query_chars: int) -> None:
        self.voters = list(voters)
        self.max_query_chars = max_query_chars

    def __call__(self, state: State) -> dict[str, Any]:
        query, flags = clean_query(state.get("query"), self.max_query_chars)
        votes = {}
        for voter in self.voters:
            out = voter.outputs([query])[0]
            votes[voter.name] = {
                "probs": dict(out.probs),
                "accepted": out.accepted,
                "thresholds": dict(voter.thresholds),
                "version": voter.version,
            }
        return {**FRESH, "query": query, "votes": votes, "reasons": flags}
