"""vote: the pure decision policy of app.core.decision applied to the two voters' records."""

from __future__ import annotations

from typing import Any

from app.core.config import VoteSettings
from app.core.decision import VoterOutput, vote
from app.core.taxonomy import Taxonomy
from graph.options import NO_OPTIONS, RunOptions
from graph.state import State


class Vote:
    def __init__(self, taxonomy: Taxonomy, policy: VoteSettings) -> None:
        self.taxonomy = taxonomy
        self.policy = policy

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        policy = options.vote(self.policy)
        a, b = (
            VoterOutput(name, rec["probs"], rec["thresholds"], rec["version"])
            for name, rec in sorted(state["votes"].items())
        )
        result = vote(a, b, self.taxonomy, min_margin=policy.min_margin, min_fine_agreement=policy.min_fine_agreement)
        update: dict[str, Any] = {
            "decision": result.decision,
            "confidence": round(result.confidence, 4),
            "candidates": result.candidates,
            "reasons": list(result.reasons),
            "route": "auto" if result.decision == "auto" else "escalate",
        }
        if result.decision == "auto":
            update |= {"labels": result.labels, "label_source": "voters"}
        return update
