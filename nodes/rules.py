"""rules: keyword/regex rules, then the confirmation policy (LLM labels confirmed by a rule or a voter).

Unconfirmed labels go to a person: before the answer when any candidate's review mode is before_answer (投诉) or
nothing is known; otherwise after it — the answer goes out now under the vote's candidates' coarse labels as a soft
filter (route "provisional"; app/core/decision.provisional_labels) and the review pauses afterwards. Confirmed label
sets are written to the feedback store.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from app.core.decision import confirm, provisional_labels
from app.core.feedback import FeedbackStore
from app.core.rules import RuleSet
from app.core.taxonomy import Taxonomy
from graph.options import NO_OPTIONS, RunOptions
from graph.state import State


class Rules:
    def __init__(self, rules: RuleSet, taxonomy: Taxonomy, feedback: FeedbackStore | None = None) -> None:
        self.rules = rules
        self.taxonomy = taxonomy
        self.feedback = feedback

    def __call__(self, state: State, config: RunnableConfig, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        hits = self.rules.hits(state["query"])
        rule_labels = [label for hit in hits for label in hit.labels]
        voter_accepted = [label for rec in state.get("votes", {}).values() for label in rec["accepted"]]
        result = confirm(state.get("llm_labels", []), rule_labels, voter_accepted, self.taxonomy)
        update: dict[str, Any] = {"rule_hits": [hit.to_dict() for hit in hits]}
        if result.confirmed:
            llm = set(self.taxonomy.fine_only(state.get("llm_labels", [])))
            confirmed_by = [f"rule:{hit.rule_id}" for hit in hits if llm & set(hit.labels)]
            votes = sorted(state.get("votes", {}).items())
            confirmed_by += [f"voter:{name}" for name, rec in votes if llm & set(rec["accepted"])]
            who = "auto:" + "+".join(confirmed_by)
            record_feedback(self.feedback, state, config, result.labels, result.source, reviewer=who)
            return update | {
                "labels": result.labels,
                "label_source": result.source,
                "route": "confirmed",
                "reasons": [f"confirmed:{result.source}"],
            }
        why = [f"unconfirmed:{label}" for label in result.unconfirmed] or ["no_llm_labels"]
        candidates = self.taxonomy.expand([*state.get("candidates", []), *result.labels])
        coarse = provisional_labels(state.get("candidates", []), candidates, self.taxonomy)
        update |= {"candidates": candidates}
        mode = options.review_mode if options.review_mode not in (None, "taxonomy") else None
        if coarse and (mode or self.taxonomy.review_mode(candidates)) == "after_answer":
            return update | {
                "labels": coarse,
                "label_source": "provisional",
                "route": "provisional",
                "reasons": [*why, "review:after_answer"],
            }
        return update | {"route": "review", "reasons": [*why, "review:before_answer"]}


def record_feedback(
    store: FeedbackStore | None,
    state: State,
    config: RunnableConfig,
    labels: list[str],
    source: str,
    *,
    reviewer: str,
) -> None:
    """One confirmed label set, with who confirmed it (a person, or `auto:rule:…+voter:…`), the thread and the voter
    versions that were asked."""
    if store is None or not labels:
        return
    versions = {name: rec.get("version", "") for name, rec in state.get("votes", {}).items()}
    configurable = config.get("configurable", {})
    thread_id = str(configurable.get("thread_id", ""))
    task = configurable.get("checkpoint_ns") or ""  # "<node>:<task id>": the same when a task is replayed
    store.add(
        thread_id=thread_id,
        event=f"{thread_id}:{task}:{source}" if thread_id and task else None,
        query=state["query"],
        labels=labels,
        source=source,
        reviewer=reviewer,
        model_versions=versions,
    )
