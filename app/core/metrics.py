"""Classification and gate metrics over label sets (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence


def exact_match(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    """Share of rows whose predicted label set equals the gold set."""
    if len(pred) != len(gold):
        raise ValueError("pred and gold differ in length")
    if not gold:
        return 0.0
    return sum(set(p) == set(g) for p, g in zip(pred, gold, strict=True)) / len(gold)


def macro_f1(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], labels: Sequence[str]) -> float:
    """Mean per-label F1 over the labels that occur in gold."""
    scores = []
    for label in labels:
        tp = sum(label in p and label in g for p, g in zip(pred, gold, strict=True))
        fp = sum(label in p and label not in g for p, g in zip(pred, gold, strict=True))
        fn = sum(label not in p and label in g for p, g in zip(pred, gold, strict=True))
        if tp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def gate_metrics(
    auto: Sequence[bool], pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Coverage (share decided automatically) and precision (exact-match accuracy of those)."""
    decided = [(p, g) for a, p, g in zip(auto, pred, gold, strict=True) if a]
    coverage = len(decided) / len(gold) if gold else 0.0
    precision = sum(set(p) == set(g) for p, g in decided) / len(decided) if decided else 0.0
    return {"auto_coverage": coverage, "auto_precision": precision}
