"""The offline third-opinion measurement: coverage and precision before and with the kNN rule (app/ops/eval/knn.py)."""

from __future__ import annotations

from app.core.fewshot import KnnVote, ThirdOpinion
from app.ops.eval.knn import GateRow, knn_report, with_rule

SCREEN, BATTERY = ["售后", "屏幕"], ["售后", "电池"]


def row(gold: list[str], auto: bool, knn: list[str], reasons: list[str], a: list[str], b: list[str]) -> GateRow:
    vote = KnnVote(knn, {x: 0.9 for x in knn}, 0.9 if knn else 0.0, 0.5, 0.95)
    return GateRow(gold, auto, a if auto else [], reasons, a, b, vote, (frozenset(gold),))


ROWS = [
    row(SCREEN, True, SCREEN, [], SCREEN, SCREEN),  # auto, right
    row(BATTERY, True, BATTERY, [], SCREEN, SCREEN),  # auto, wrong
    row(SCREEN, False, SCREEN, ["fine_disagree"], SCREEN, BATTERY),  # kNN sides with A: decided, right
    row(BATTERY, False, SCREEN, ["A:low_margin"], SCREEN, SCREEN),  # decided, wrong
    row(SCREEN, False, SCREEN, ["out_of_scope"], [], []),  # never decided
]


def test_with_rule_counts_what_the_knn_decides() -> None:
    result = with_rule(ROWS, ThirdOpinion(min_support=0.8))
    assert result["auto_coverage"] == [0.4, 0.8] and result["auto_precision"] == [0.5, 0.5]
    assert result["decided_by_knn"] == 2 and result["decided_by_knn_right"] == 1
    strict = with_rule(ROWS, ThirdOpinion(min_support=0.95))
    assert strict["auto_coverage"] == [0.4, 0.4] and strict["decided_by_knn"] == 0


def test_knn_report_scores_the_knn_on_escalated_rows(taxonomy) -> None:  # type: ignore[no-untyped-def]
    report = knn_report(ROWS, taxonomy)
    assert report["on_escalated"]["exact_set_accuracy"] == round(2 / 3, 4)
    assert report["gold_among_examples"] == 1.0
    assert {entry["reasons"] for entry in report["grid"]} >= {"low_margin", "+none_accepted"}
