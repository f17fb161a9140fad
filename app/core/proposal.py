"""The escalation path's proposal: one label set from every opinion the graph already holds on an escalated query.

Each opinion gives a score in [0, 1] per label: the voters their probabilities, the kNN vote over reviewed examples
its weighted share, the LLM 1.0 for each label it extracted. A leaf label (a fine label, or a coarse one nothing
hangs under, like the out-of-scope label) is proposed when the mean of its scores over the opinions is above
`accept` (a majority: a tie is not one); when none is, the leaf with the highest mean is proposed alone, so a
reviewer always starts from a set.
Every opinion weighs the same: nothing here is tuned to one data set.

Measured on the demo's escalated queries (`labelgate bench extract`, docs/escalation.md): the proposal's exact set is
right far more often than the LLM's alone, and without an LLM the voters plus kNN still give one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.core.taxonomy import Taxonomy

ACCEPT = 0.5


@dataclass(frozen=True)
class Proposal:
    """labels: the proposed set with coarse parents, in taxonomy order (empty only when no opinion was given);
    scores: every leaf's mean score; opinions: the names of the opinions that took part."""

    labels: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    opinions: list[str] = field(default_factory=list)


def llm_opinion(labels: Iterable[str], taxonomy: Taxonomy) -> dict[str, float]:
    """The LLM's extraction as an opinion: 1.0 for each known leaf it named (a parent alone names no leaf)."""
    leaves = set(taxonomy.leaf_ids)
    return {label: 1.0 for label in taxonomy.split_known(labels)[0] if label in leaves}


def propose(opinions: Mapping[str, Mapping[str, float]], taxonomy: Taxonomy, *, accept: float = ACCEPT) -> Proposal:
    """Fuse the opinions (name → label → score) into one label set. Order of the opinions does not matter; scores
    outside [0, 1] are clipped; labels outside the taxonomy are ignored."""
    if not 0 <= accept < 1:
        raise ValueError("accept must be in [0, 1)")
    names = sorted(opinions)
    if not names:
        return Proposal([])
    leaves = taxonomy.leaf_ids
    means = {
        leaf: sum(min(max(float(opinions[name].get(leaf, 0.0)), 0.0), 1.0) for name in names) / len(names)
        for leaf in leaves
    }
    chosen = [leaf for leaf in leaves if means[leaf] > accept]
    if not chosen:
        best = max(leaves, key=lambda leaf: (means[leaf], -leaves.index(leaf)))
        chosen = [best] if means[best] > 0 else []
    return Proposal(taxonomy.expand(chosen), means, names)
