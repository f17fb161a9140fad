"""rules: keyword/regex rules, then the confirmation policy (LLM labels confirmed by a rule or a voter)."""

from __future__ import annotations

from typing import Any

from app.decision import confirm
from app.rules import RuleSet
from app.taxonomy import Taxonomy
from graph.state import State, add_reasons


class Rules:
    def __init__(self, rules: RuleSet, taxonomy: Taxonomy) -> None:
        self.rules = rules
        self.taxonomy = taxonomy

    def __call__(self, state: State) -> dict[str, Any]:
        hits = self.rules.hits(state["query"])
        rule_labels = [label for hit in hits for label in hit.labels]
        voter_accepted = [label for rec in state.get("votes", {}).values() for label in rec["accepted"]]
        result = confirm(state.get("llm_labels", []), rule_labels, voter_accepted, self.taxonomy)
        update: dict[str, Any] = {"rule_hits": [hit.to_dict() for hit in hits]}
        if result.confirmed:
            return update | {
                "labels": result.labels,
                "label_source": result.source,
                "route": "confirmed",
                "reasons": add_reasons(state, f"confirmed:{result.source}"),
            }
        why = [f"unconfirmed:{label}" for label in result.unconfirmed] or ["no_llm_labels"]
        return update | {
            "route": "review",
            "candidates": self.taxonomy.expand([*state.get("candidates", []), *result.labels]),
            "reasons": add_reasons(state, *why),
        }
