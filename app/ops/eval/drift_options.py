"""The options of `labelgate eval drift` (one place for the harness and the doc labelling it runs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.config import TrainMode
from app.core.errors import ConfigError

LEVELS = ("coarse", "leaf")


@dataclass(frozen=True)
class DriftOptions:
    growth: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0)
    k: int = 10
    fetch_k: int = 30
    base_docs: int = 200
    train_docs: int = 2000
    mode: str = "fast"
    gold_doc_labels: bool = False
    level: str = "coarse"  # what "another category" means for growth and purity: coarse labels, or leaf labels
    tune: bool = False
    current_voters: bool = False
    max_queries: int | None = None
    dev_share: float = 1 / 3
    seed: int = 13
    soft: bool = True  # soft gating: dense candidates admitted, the label term weighted by trust (False: as before)
    doc_id_sep: str | None = None  # docs are chunks `<doc><sep><n>`, `relevant` names documents: scored per document

    def check(self) -> None:
        if not self.growth or any(g < 0 or not np.isfinite(g) for g in self.growth):
            raise ConfigError(f"growth must be non-negative numbers, got {list(self.growth)}")
        if list(self.growth) != sorted(set(self.growth)):
            raise ConfigError(f"growth must be increasing without repeats, got {list(self.growth)}")
        if self.k < 1 or self.fetch_k < self.k or self.base_docs < 1 or self.train_docs < 2:
            raise ConfigError("need k ≥ 1, fetch_k ≥ k, base_docs ≥ 1 and train_docs ≥ 2")
        if self.mode not in set(TrainMode):
            raise ConfigError(f"mode must be one of {[m.value for m in TrainMode]}, not {self.mode!r}")
        if self.level not in LEVELS:
            raise ConfigError(f"level must be one of {list(LEVELS)}, not {self.level!r}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError("max_queries must be at least 1")
        if self.doc_id_sep is not None and not self.doc_id_sep:
            raise ConfigError("doc_id_sep must be a non-empty string")
