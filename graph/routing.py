"""Conditional-edge functions (pure): where the run goes after vote and after rules."""

from __future__ import annotations

from typing import Literal

from graph.state import State


def after_vote(state: State) -> Literal["retrieve", "extract"]:
    """Auto decisions go straight to retrieval; anything unsure or disputed escalates to the LLM."""
    return "retrieve" if state.get("decision") == "auto" else "extract"


def after_rules(state: State) -> Literal["retrieve", "review"]:
    """Confirmed LLM labels continue; everything else waits for a person."""
    return "retrieve" if state.get("route") == "confirmed" else "review"
