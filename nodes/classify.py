"""classify: clean the query, run both voters once each, record per-label probabilities and accepted sets."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core.textutil import clean_query
from app.core.voters.base import Voter, VoterOutput
from graph.options import NO_OPTIONS, RunOptions, option_reasons
from graph.state import State, turn_reset


class Classify:
    """When every voter uses one thread a call (int8 ONNX voter A, USE voter B) they run at once, one per core, and
    the gate costs about the slower voter (bench gate p50 5.5–6.4 → 4.1–5.5 ms). A torch voter uses every core itself:
    then they run one after the other (in parallel they contend: 17 → 24 ms)."""

    def __init__(self, voters: Sequence[Voter], *, max_query_chars: int) -> None:
        self.voters = list(voters)
        self.max_query_chars = max_query_chars
        parallel = len(self.voters) > 1 and all(v.meta.get("one_thread_per_call", False) for v in self.voters)
        self.pool = ThreadPoolExecutor(len(self.voters) - 1, thread_name_prefix="voter") if parallel else None

    def _outputs(self, query: str) -> list[VoterOutput]:
        if self.pool is None:
            return [voter.outputs([query])[0] for voter in self.voters]
        # the others on pool threads, the first (voter A, the slower) on the caller's: one hand-off fewer
        others = [self.pool.submit(voter.outputs, [query]) for voter in self.voters[1:]]
        first = self.voters[0].outputs([query])[0]
        return [first, *(future.result()[0] for future in others)]

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        query, flags = clean_query(state.get("query"), self.max_query_chars)
        flags = [*flags, *option_reasons(options)]
        outputs = self._outputs(query)
        votes = {}
        for voter, out in zip(self.voters, outputs, strict=True):
            votes[voter.name] = {
                "probs": dict(out.probs),
                "accepted": out.accepted,
                "thresholds": dict(voter.thresholds),
                "version": voter.version,
            }
        return {**turn_reset(flags), "query": query, "votes": votes}
