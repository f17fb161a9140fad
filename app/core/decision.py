"""Decision math of the gate: accepted labels, agreement, margin, the vote and the confirmation policy.

Pure functions over plain data; no models, no I/O. Property-tested in tests/unit/app/core/test_decision.py.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.core.taxonomy import Taxonomy

Decision = Literal["auto", "escalate"]


def accepted_labels(probs: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """Labels whose probability reaches their own threshold (labels without a threshold are never accepted)."""
    return [label for label, p in probs.items() if label in thresholds and p >= thresholds[label]]


def jaccard(a: Collection[str], b: Collection[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets agree fully."""
    union = set(a) | set(b)
    if not union:
        return 1.0
    return len(set(a) & set(b)) / len(union)


def separation_margin(probs: Mapping[str, float], accepted: Collection[str]) -> float:
    """Lowest accepted probability minus highest rejected one (top-1 minus top-2 in the single-label case).

    Nothing accepted gives -1.0 (no separation at all); everything accepted gives 1.0.
    """
    inside = [p for label, p in probs.items() if label in accepted]
    outside = [p for label, p in probs.items() if label not in accepted]
    if not inside:
        return -1.0
    if not outside:
        return 1.0
    return min(inside) - max(outside)


def leaf_complete(labels: Collection[str], taxonomy: Taxonomy) -> bool:
    """Every chosen label is a leaf or has a chosen child. A coarse label alone (「售后」 without saying which
    after-sales topic) is a partial answer: on the demo's test split 9 of the 23 wrong automatic decisions were one."""
    leaves = set(taxonomy.leaf_ids)
    return bool(labels) and all(label in leaves for label in taxonomy.fine_only(labels))


@dataclass(frozen=True)
class VoterOutput:
    """One voter's view of one query: calibrated probabilities and its per-label thresholds."""

    name: str
    probs: Mapping[str, float]
    thresholds: Mapping[str, float]
    version: str = ""

    @property
    def accepted(self) -> list[str]:
        return accepted_labels(self.probs, self.thresholds)


@dataclass(frozen=True)
class VoteResult:
    decision: Decision
    labels: list[str]
    confidence: float
    reasons: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)


def vote(
    a: VoterOutput,
    b: VoterOutput,
    taxonomy: Taxonomy,
    *,
    min_margin: float,
    min_fine_agreement: float,
) -> VoteResult:
    """Auto only when both voters accept something, agree on coarse labels, mostly agree on fine ones, each separates
    accepted from rejected labels by at least min_margin, and what they agree on names leaf labels (not a coarse
    label alone). Otherwise escalate."""
    acc_a, acc_b = taxonomy.expand(a.accepted), taxonomy.expand(b.accepted)
    reasons: list[str] = []
    for voter, acc in ((a, acc_a), (b, acc_b)):
        if not acc:
            reasons.append(f"{voter.name}:none_accepted")
    if not acc_a and not acc_b:
        reasons.append("out_of_scope")
    coarse = set(taxonomy.coarse_ids)
    coarse_a, coarse_b = [x for x in acc_a if x in coarse], [x for x in acc_b if x in coarse]
    fine_a, fine_b = [x for x in acc_a if x not in coarse], [x for x in acc_b if x not in coarse]
    if acc_a and acc_b and set(coarse_a) != set(coarse_b):
        reasons.append("coarse_disagree")
    if acc_a and acc_b and jaccard(fine_a, fine_b) < min_fine_agreement:
        reasons.append("fine_disagree")
    for voter, acc in ((a, acc_a), (b, acc_b)):
        if acc and separation_margin(voter.probs, acc) < min_margin:
            reasons.append(f"{voter.name}:low_margin")
    candidates = taxonomy.expand(set(acc_a) | set(acc_b))
    if reasons:
        return VoteResult("escalate", candidates, _confidence(a, b, candidates), reasons, candidates)
    agreed = set(fine_a) & set(fine_b) | (set(coarse_a) & set(coarse_b))
    labels = taxonomy.expand(agreed)
    if not leaf_complete(labels, taxonomy):
        return VoteResult("escalate", candidates, _confidence(a, b, candidates), ["coarse_only"], candidates)
    return VoteResult("auto", labels, _confidence(a, b, labels), ["agree"], candidates)


def _confidence(a: VoterOutput, b: VoterOutput, labels: Sequence[str]) -> float:
    """Weakest of the chosen labels, averaged over the two voters; 0.0 with no labels."""
    if not labels:
        return 0.0
    return min((a.probs.get(label, 0.0) + b.probs.get(label, 0.0)) / 2 for label in labels)


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    labels: list[str]
    source: str
    unconfirmed: list[str]


def confirm(
    llm_labels: Sequence[str],
    rule_labels: Sequence[str],
    voter_accepted: Sequence[str],
    taxonomy: Taxonomy,
) -> Confirmation:
    """LLM labels confirmed by a rule hit or by either voter's accepted set continue; anything else goes to review.

    Rules may add labels, never remove them. No LLM labels at all is never confirmed.
    """
    rule_set = set(taxonomy.expand(rule_labels))
    voter_set = set(taxonomy.expand(voter_accepted))
    llm = taxonomy.fine_only(taxonomy.split_known(llm_labels)[0])
    by_rule = [label for label in llm if label in rule_set]
    unconfirmed = [label for label in llm if label not in rule_set and label not in voter_set]
    labels = taxonomy.expand(set(llm) | rule_set)
    if not llm or unconfirmed:
        return Confirmation(False, labels, "unconfirmed", unconfirmed if llm else [])
    return Confirmation(True, labels, "llm+rules" if by_rule else "llm+voter", [])


def provisional_labels(vote_candidates: Sequence[str], others: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    """The coarse labels an escalation's answer is filtered on before its review (route "provisional"): those of the
    vote's candidates — what `provisional_reliability` measures — else, when the voters had none, those of every
    other source's labels (the LLM's, the rules'). The one definition the graph (nodes/rules.py), `labelgate train`'s
    `provisional_precision` and the drift harness share. Not the escalation path's proposal (app/core/proposal.py):
    on the demo's escalations its coarse labels are right more often (0.84–0.94 vs 0.67–0.70), but trusted that much
    the soft gate stops admitting dense candidates and recall falls (docs/drift.md)."""
    coarse = set(taxonomy.coarse_ids)
    chosen = [label for label in taxonomy.expand(vote_candidates) if label in coarse]
    return chosen or [label for label in taxonomy.expand(others) if label in coarse]
