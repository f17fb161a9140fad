"""Calibration on a dev split: one temperature for all logits, then a threshold per label for a target precision."""

from __future__ import annotations

import numpy as np

TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def bce(probs: np.ndarray, targets: np.ndarray) -> float:
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T minimising binary cross-entropy of sigmoid(logits / T) on dev (grid search)."""
    if logits.shape != targets.shape or logits.size == 0:
        raise ValueError(f"logits {logits.shape} and targets {targets.shape} must be equal, non-empty shapes")
    losses = [bce(sigmoid(logits / t), targets) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def label_threshold(probs: np.ndarray, targets: np.ndarray, *, target_precision: float, floor: float) -> float:
    """Smallest threshold >= floor whose dev precision reaches target_precision.

    When no threshold reaches it, the threshold sits just above the highest-scoring negative (so dev precision
    is 1.0 wherever anything passes); a label with no dev positives keeps max(floor, 0.5).
    """
    positives = targets > 0.5
    if not positives.any():
        return max(floor, 0.5)
    for t in np.unique(probs[probs >= floor]):
        passed = probs >= t
        if passed.any() and positives[passed].mean() >= target_precision:
            return float(t)
    negatives = probs[~positives]
    top_negative = float(negatives.max()) if negatives.size else floor
    return float(min(max(top_negative + 1e-6, floor), 0.999))


def label_thresholds(
    probs: np.ndarray, targets: np.ndarray, *, target_precision: float, floor: float
) -> np.ndarray:
    """Per-column label_threshold; probs and targets are (n, labels)."""
    if probs.shape != targets.shape:
        raise ValueError(f"probs {probs.shape} and targets {targets.shape} differ")
    return np.array(
        [
            label_threshold(probs[:, j], targets[:, j], target_precision=target_precision, floor=floor)
            for j in range(probs.shape[1])
        ]
    )
