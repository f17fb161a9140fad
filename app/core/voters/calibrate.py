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


def label_threshold(
    probs: np.ndarray, targets: np.ndarray, *, target_precision: float, floor: float, ceiling: float = 0.999
) -> float:
    """Smallest threshold in [floor, ceiling] whose dev precision reaches target_precision.

    When none does, the ceiling (dev sets are small: one confident negative must not push a label out of reach;
    the two voters' agreement guards precision too). A label with no dev positives gets max(floor, 0.5).
    """
    positives = targets > 0.5
    if not positives.any():
        return min(max(floor, 0.5), ceiling)
    for t in np.unique(probs[(probs >= floor) & (probs <= ceiling)]):
        passed = probs >= t
        if passed.any() and positives[passed].mean() >= target_precision:
            return float(t)
    return float(ceiling)


def label_thresholds(
    probs: np.ndarray, targets: np.ndarray, *, target_precision: float, floor: float, ceiling: float = 0.999
) -> np.ndarray:
    """Per-column label_threshold; probs and targets are (n, labels)."""
    if probs.shape != targets.shape:
        raise ValueError(f"probs {probs.shape} and targets {targets.shape} differ")
    return np.array(
        [
            label_threshold(probs[:, j], targets[:, j], target_precision=target_precision, floor=floor, ceiling=ceiling)
            for j in range(probs.shape[1])
        ]
    )
