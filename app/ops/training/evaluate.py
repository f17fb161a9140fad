"""Score two voters and the gate on a labelled split: accuracy, macro-F1, agreement, auto coverage/precision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.config import VoteSettings
from app.core.data import Example
from app.core.decision import accepted_labels, provisional_labels, vote
from app.core.metrics import exact_match, gate_metrics, macro_f1
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter


def classifier_labels(probs: Mapping[str, float], taxonomy: Taxonomy) -> list[str]:
    """A voter's plain classification (no gating): every label at p >= 0.5, else its single most likely label."""
    chosen = [label for label, p in probs.items() if p >= 0.5]
    if not chosen:
        chosen = [max(taxonomy.leaf_ids, key=lambda label: probs.get(label, 0.0))]
    return taxonomy.expand(chosen)


def _coarse(labels: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    return [label for label in labels if label in taxonomy.coarse_ids]


def feedback_learned(voters: Sequence[Voter], reviewed: Sequence[Example], taxonomy: Taxonomy) -> float | None:
    """Share of reviewed queries on which every voter accepts exactly the reviewer's labels: the direct check that
    confirmed feedback reached the voters (None when nothing was reviewed)."""
    if not reviewed:
        return None
    texts = [ex.text for ex in reviewed]
    outputs = [voter.outputs(texts) for voter in voters]
    hits = sum(
        all(set(taxonomy.expand(accepted_labels(out[i].probs, out[i].thresholds))) == set(ex.labels) for out in outputs)
        for i, ex in enumerate(reviewed)
    )
    return round(hits / len(reviewed), 4)


def evaluate(
    a: Voter, b: Voter, examples: Sequence[Example], taxonomy: Taxonomy, policy: VoteSettings
) -> dict[str, Any]:
    texts = [ex.text for ex in examples]
    gold = [list(ex.labels) for ex in examples]
    out_a, out_b = a.outputs(texts), b.outputs(texts)
    pred_a = [classifier_labels(o.probs, taxonomy) for o in out_a]
    pred_b = [classifier_labels(o.probs, taxonomy) for o in out_b]
    votes = [
        vote(x, y, taxonomy, min_margin=policy.min_margin, min_fine_agreement=policy.min_fine_agreement)
        for x, y in zip(out_a, out_b, strict=True)
    ]
    auto = [v.decision == "auto" for v in votes]
    gate = gate_metrics(auto, [v.labels for v in votes], gold)
    coarse_gate = gate_metrics(auto, [_coarse(v.labels, taxonomy) for v in votes], [_coarse(g, taxonomy) for g in gold])
    escalated = len(auto) - sum(auto)
    # an escalation answered before its review is filtered as the graph filters it (nodes/rules.py): right when
    # there are coarse labels and all are gold (drift_math.source_reliability's "provisional")
    provisional = [
        bool(coarse := set(provisional_labels(v.candidates, (), taxonomy))) and coarse <= set(g)
        for v, au, g in zip(votes, auto, gold, strict=True)
        if not au
    ]
    return {
        "rows": len(examples),
        "voters": {
            name: {
                "accuracy": exact_match(pred, gold),
                "macro_f1": macro_f1(pred, gold, taxonomy.ids),
                "coarse_accuracy": exact_match(
                    [_coarse(p, taxonomy) for p in pred], [_coarse(g, taxonomy) for g in gold]
                ),
            }
            for name, pred in (("A", pred_a), ("B", pred_b))
        },
        "agreement": sum(set(x) == set(y) for x, y in zip(pred_a, pred_b, strict=True)) / max(len(gold), 1),
        **gate,
        "auto_precision_coarse": coarse_gate["auto_precision"],
        "escalated": escalated,
        "provisional_precision": sum(provisional) / escalated if escalated else None,
        "escalated_where_a_wrong": sum(
            not au and set(p) != set(g) for au, p, g in zip(auto, pred_a, gold, strict=True)
        ),
    }
