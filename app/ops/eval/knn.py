"""The kNN vote over reviewed examples, measured offline (`labelgate bench extract`): as a labeller on the rows the
voters escalate, and as a third opinion that may decide an escalation automatically (app.core.fewshot.third_opinion)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.fewshot import KNN_K, KNN_TEMPERATURE, KnnVote, ThirdOpinion, knn_vote_shots, third_opinion
from app.core.metrics import exact_match, gate_metrics, macro_f1
from app.core.taxonomy import Taxonomy

# the best rule on the demo dev split (5 of 5 right there); kept for test: see the README's "Few-shot extraction"
RULE = ThirdOpinion(min_support=0.8, min_similarity=0.93, overridable=frozenset({"low_margin", "fine_disagree"}))
GRID_SUPPORT = (0.6, 0.7, 0.8, 0.9, 1.0)
GRID_REASONS: dict[str, frozenset[str]] = {
    "low_margin": frozenset({"low_margin"}),
    "low_margin+fine_disagree": frozenset({"low_margin", "fine_disagree"}),
    "+coarse_disagree": frozenset({"low_margin", "fine_disagree", "coarse_disagree"}),
    "+none_accepted": frozenset({"low_margin", "fine_disagree", "coarse_disagree", "none_accepted"}),
}


@dataclass(frozen=True)
class GateRow:
    """One query through the gate: gold labels, the vote's decision/labels/reasons and each voter's accepted set."""

    gold: list[str]
    auto: bool
    labels: list[str]
    reasons: list[str]
    accepted_a: list[str]
    accepted_b: list[str]
    knn: KnnVote
    neighbour_sets: tuple[frozenset[str], ...] = ()


def labeller_scores(
    pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], taxonomy: Taxonomy
) -> dict[str, float]:
    """exact-set / coarse / macro-F1 of predicted label sets (expanded) against gold."""
    coarse = set(taxonomy.coarse_ids)
    return {
        "exact_set_accuracy": round(exact_match(pred, gold), 4),
        "coarse_accuracy": round(
            exact_match([[x for x in p if x in coarse] for p in pred], [[x for x in g if x in coarse] for g in gold]), 4
        ),
        "macro_f1": round(macro_f1(pred, gold, taxonomy.ids), 4),
    }


def with_rule(rows: Sequence[GateRow], rule: ThirdOpinion) -> dict[str, Any]:
    """Auto coverage and precision of the gate, before and with the kNN third opinion on escalations."""
    gold = [row.gold for row in rows]
    before = gate_metrics([row.auto for row in rows], [row.labels for row in rows], gold)
    auto, pred, rescued, rescued_right = [], [], 0, 0
    for row in rows:
        decided = None if row.auto else third_opinion(row.accepted_a, row.accepted_b, row.reasons, row.knn, rule)
        auto.append(row.auto or decided is not None)
        pred.append(row.labels if decided is None else decided)
        if decided is not None:
            rescued += 1
            rescued_right += set(decided) == set(row.gold)
    after = gate_metrics(auto, pred, gold)
    return {
        "rule": {
            "min_support": rule.min_support,
            "min_similarity": rule.min_similarity,
            "overridable": sorted(rule.overridable),
        },
        "auto_coverage": [round(before["auto_coverage"], 4), round(after["auto_coverage"], 4)],
        "auto_precision": [round(before["auto_precision"], 4), round(after["auto_precision"], 4)],
        "decided_by_knn": rescued,
        "decided_by_knn_right": rescued_right,
    }


def knn_report(rows: Sequence[GateRow], taxonomy: Taxonomy) -> dict[str, Any]:
    """The kNN vote alone on escalated rows, the chosen third-opinion rule, and a small grid of alternatives."""
    escalated = [row for row in rows if not row.auto]
    grid = []
    for name, kinds in GRID_REASONS.items():
        for support in GRID_SUPPORT:
            result = with_rule(rows, ThirdOpinion(min_support=support, overridable=kinds))
            del result["rule"]
            grid.append({"reasons": name, "min_support": support, **result})
    return {
        "k": KNN_K,
        "temperature": KNN_TEMPERATURE,
        "on_escalated": labeller_scores([r.knn.labels for r in escalated], [r.gold for r in escalated], taxonomy),
        # how often the right label set is among the examples' own sets: the ceiling of copying an example
        "gold_among_examples": round(
            sum(frozenset(r.gold) in r.neighbour_sets for r in escalated) / max(len(escalated), 1), 4
        ),
        "third_opinion": with_rule(rows, RULE),
        "grid": grid,
    }


def gate_row(
    gold: list[str], state: dict[str, Any], vote_reasons: list[str], shots: Sequence[Any], taxonomy: Taxonomy
) -> GateRow:
    votes = state["votes"]
    return GateRow(
        gold=gold,
        auto=state["decision"] == "auto",
        labels=list(state.get("labels", [])),
        reasons=vote_reasons,
        accepted_a=taxonomy.expand(votes["A"]["accepted"]),
        accepted_b=taxonomy.expand(votes["B"]["accepted"]),
        knn=knn_vote_shots(shots[:KNN_K], taxonomy, temperature=KNN_TEMPERATURE),
        neighbour_sets=tuple(frozenset(shot.labels) for shot in shots),
    )
