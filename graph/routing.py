"""Conditional-edge functions (pure): where the run goes after vote and after rules."""

from __future__ import annotations

from typing import Literal

from graph.state import State


def after_vote(state: State) -> Literal["retrieve", "extract"]:
    """Auto decisions go straight to retrieval; anything unsure or disputed escalates to the LLM."""
    return "retrieve" if state.get("decision") == "auto" else "extract"


def after_rules(state: State) -> Literal["retrieve", "review"]:
    """Confirmed labels continue, and so do provisional ones (review after the answer); the rest waits for a person."""
    return "retrieve" if state.get("route") in ("confirmed", "provisional") else "review"


def after_answer(state: State) -> Literal["review", "__end__"]:
    """A provisional answer is followed by the review that confirms its labels."""
    return "review" if state.get("route") == "provisional" else "__end__"


def after_review(state: State) -> Literal["retrieve", "__end__"]:
    """Reviewed before the answer: now retrieve with the confirmed labels. Reviewed after it: done."""
    return "__end__" if state.get("answer_kind") else "retrieve"
