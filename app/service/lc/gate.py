"""The graph's nodes composed without the graph (no LLM, no review pause): classify + vote, then retrieve + rerank.

An escalated query is not sent to the LLM or a person here: it is filtered like the graph's provisional route, by the
coarse parents of the voters' candidates (no filter when there are none), and the decision says `escalate`.
"""

from __future__ import annotations

from typing import Any

from app.core.components import Components
from graph.state import State, apply_update
from nodes.classify import Classify
from nodes.rerank import Rerank, query_label_probs
from nodes.retrieve import Retrieve
from nodes.vote import Vote

UNCONFIRMED = "voters:coarse_unconfirmed"  # label_source of an escalated query's conservative filter


class Gate:
    def __init__(self, components: Components) -> None:
        s = components.settings
        self.components = components
        self.classify = Classify(components.voters, max_query_chars=s.max_query_chars)
        self.vote = Vote(components.taxonomy, s.vote)

    def decide(self, query: str) -> State:
        """classify + vote on one query: the graph's first two nodes."""
        state: dict[str, Any] = {"query": query}
        state = apply_update(state, self.classify(state))  # type: ignore[arg-type]
        state = apply_update(state, self.vote(state))  # type: ignore[arg-type]
        return state  # type: ignore[return-value]

    def filtered(self, state: State) -> State:
        """An escalated query with the conservative coarse labels to filter by (an auto one as it is)."""
        if state["decision"] == "auto":
            return state
        coarse = [label for label in state["candidates"] if label in self.components.taxonomy.coarse_ids]
        why = f"filter:{'coarse' if coarse else 'none'}_unconfirmed"
        return apply_update(state, {"labels": coarse, "label_source": UNCONFIRMED, "reasons": [why]})  # type: ignore[return-value]

    def retrieve(self, state: State, k: int) -> State:
        """The graph's retrieve and rerank nodes with top_k = k."""
        c, s = self.components, self.components.settings
        out: dict[str, Any] = dict(state)
        trust = c.label_reliability()
        retrieve = Retrieve(c.kb, c.taxonomy, top_k=k, fetch_k=s.fetch_k, reliability=trust)
        out = apply_update(out, retrieve(out))  # type: ignore[arg-type]
        out = apply_update(out, Rerank(c.taxonomy, s.rerank, top_k=k, reliability=trust)(out))  # type: ignore[arg-type]
        return out  # type: ignore[return-value]


def checked(components: Any) -> Components:
    """The pydantic validator of the LangChain classes' `components` field."""
    if not isinstance(components, Components):
        got = type(components).__name__
        raise ValueError(f"components must be app.core.components.Components (Components.load(settings)), not {got}")
    return components


def probabilities(state: State) -> dict[str, float]:
    """The voters' mean probability per label (what the rerank node's label match starts from)."""
    return {
        label: round(p, 4)
        for label, p in query_label_probs({"votes": state.get("votes", {})}).items()  # type: ignore[typeddict-item]
    }
