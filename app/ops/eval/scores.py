"""Selective-classification math of `labelgate eval classify` (pure numpy, property-tested): out-of-scope thresholds,
the risk–coverage curve, calibration error and the worst labels' confusions."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))


def _arrays(conf: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c, ok = np.asarray(conf, dtype=float), np.asarray(correct, dtype=bool)
    if c.shape != ok.shape or c.ndim != 1:
        raise ValueError(f"confidences {c.shape} and correctness {ok.shape} must be equal 1-d shapes")
    return c, ok


def ranked_correct(conf: ArrayLike, correct: ArrayLike) -> np.ndarray:
    """Correctness sorted from the most to the least confident row (ties: stable)."""
    c, ok = _arrays(conf, correct)
    return ok[np.argsort(-c, kind="stable")]


def risk_coverage(conf: ArrayLike, correct: ArrayLike) -> list[tuple[float, float]]:
    """(coverage, risk) when only the most confident `coverage` share is decided, at 5 % steps."""
    ranked = ranked_correct(conf, correct)
    if not len(ranked):
        return []
    points = []
    for coverage in COVERAGES:
        k = max(1, round(coverage * len(ranked)))
        points.append((coverage, round(1.0 - float(ranked[:k].mean()), 6)))
    return points


def aurc(conf: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk–coverage curve over every prefix (lower is better; 0 = errors ranked last, or none)."""
    ranked = ranked_correct(conf, correct)
    if not len(ranked):
        return 0.0
    risks = 1.0 - np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    return float(risks.mean())


def precision_at_coverage(conf: ArrayLike, correct: ArrayLike, coverage: float) -> float:
    """Accuracy of the most confident `coverage` share of rows."""
    ranked = ranked_correct(conf, correct)
    if not len(ranked):
        return 0.0
    k = max(1, round(coverage * len(ranked)))
    return float(ranked[:k].mean())


def coverage_at_precision(conf: ArrayLike, correct: ArrayLike, precision: float) -> float:
    """Largest share of rows, taken by confidence, whose accuracy is still >= precision (0.0 if none is)."""
    ranked = ranked_correct(conf, correct)
    if not len(ranked):
        return 0.0
    running = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    ok = np.nonzero(running >= precision - 1e-12)[0]
    return float((ok[-1] + 1) / len(ranked)) if len(ok) else 0.0


def threshold_for_precision(conf: ArrayLike, correct: ArrayLike, precision: float) -> float:
    """The lowest confidence whose more-confident rows are still >= precision accurate (1.0 + ε when none)."""
    c, ok = _arrays(conf, correct)
    order = np.argsort(-c, kind="stable")
    running = np.cumsum(ok[order]) / np.arange(1, len(c) + 1)
    passing = np.nonzero(running >= precision - 1e-12)[0]
    return float(c[order][passing[-1]]) if len(passing) else 1.0 + 1e-9


def reliability(conf: ArrayLike, correct: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width confidence bins: mean confidence, accuracy and row count of each non-empty bin."""
    c, ok = _arrays(conf, correct)
    which = np.minimum((np.clip(c, 0.0, 1.0) * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "confidence": round(float(c[inside].mean()), 6),
                    "accuracy": round(float(ok[inside].mean()), 6),
                    "count": int(inside.sum()),
                }
            )
    return rows


def ece(conf: ArrayLike, correct: ArrayLike, bins: int = 15) -> float:
    """Expected calibration error: the count-weighted gap between confidence and accuracy over the bins."""
    c, _ = _arrays(conf, correct)
    if not len(c):
        return 0.0
    return float(
        sum(r["count"] * abs(r["confidence"] - r["accuracy"]) for r in reliability(conf, correct, bins)) / len(c)
    )


def oos_threshold(
    conf: ArrayLike, correct: ArrayLike, is_oos: ArrayLike, predicted_oos: ArrayLike, *, min_recall: float = 0.7
) -> float:
    """The confidence below which a row is called out of scope, chosen on dev: the lowest threshold (so the highest
    in-scope accuracy) whose OOS recall reaches `min_recall`; when none does, the one maximising in-scope accuracy +
    OOS recall. In scope, a row counts when it is correct and at or above the threshold; out of scope, when it falls
    below it or the classifier itself said out of scope. Candidates are 0 and the observed confidences."""
    c, ok = _arrays(conf, correct)
    oos, said = np.asarray(is_oos, dtype=bool), np.asarray(predicted_oos, dtype=bool)
    if not oos.any() or oos.all():
        return 0.0
    best, best_score = 0.0, -1.0
    for t in np.unique(np.concatenate([[0.0], c])):
        kept = c >= t
        recall = float((~kept | said)[oos].mean())
        if recall >= min_recall:
            return float(t)
        score = float((ok & kept)[~oos].mean()) + recall
        if score > best_score + 1e-12:
            best, best_score = float(t), score
    return best


def worst_labels(pred: Sequence[str], gold: Sequence[str], *, k: int = 10, columns: int = 6) -> list[dict[str, Any]]:
    """The k gold labels with the lowest F1 (ties: more support first), each with what it was mistaken for."""
    if len(pred) != len(gold):
        raise ValueError("pred and gold differ in length")
    support, tp = Counter(gold), Counter(g for p, g in zip(pred, gold, strict=True) if p == g)
    predicted = Counter(pred)
    confused: dict[str, Counter[str]] = defaultdict(Counter)
    for p, g in zip(pred, gold, strict=True):
        if p != g:
            confused[g][p] += 1
    f1 = {label: 2 * tp[label] / (n + predicted[label]) for label, n in support.items()}
    ranked = sorted(support, key=lambda label: (f1[label], -support[label], label))
    return [
        {
            "label": label,
            "f1": round(f1[label], 4),
            "support": support[label],
            "confused_with": dict(confused[label].most_common(columns)),
        }
        for label in ranked[:k]
    ]
