"""A trained voter at run time: calibrated per-label probabilities and thresholds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.decision import VoterOutput
from app.core.voters.calibrate import sigmoid


@dataclass
class Voter:
    """Wraps a logits function with the calibration learnt on dev."""

    name: str
    version: str
    labels: list[str]
    logits_fn: Callable[[Sequence[str]], np.ndarray]
    temperature: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.logits_fn(texts)

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """(n, labels) calibrated probabilities."""
        return sigmoid(self.logits(texts) / self.temperature)

    def outputs(self, texts: Sequence[str]) -> list[VoterOutput]:
        rows = self.probs(texts)
        return [
            VoterOutput(
                name=self.name,
                probs={label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)},
                thresholds=self.thresholds,
                version=self.version,
            )
            for row in rows
        ]
