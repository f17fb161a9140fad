"""Both voters trained and calibrated for an evaluation, in one of the training modes.

fast: frozen encoders with embeddings cached on disk, a head on each (voter A: the int8 ONNX export of e5, as
      `labelgate train` with `train.mode=fast` serves it, class weights `weight`, no augmentation; voter B: USE,
      `weight_b`, paraphrased rare labels) — seconds to a few minutes on 2 cores.
full, lora: voter A fine-tuned (every layer, or LoRA adapters) as `labelgate train` does in that mode (scored on torch),
      voter B as above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from app.core.config import Settings, TrainMode
from app.core.data import Example
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter
from app.core.voters.encoders import DiskCachedEncoder
from app.core.voters.store import new_version
from app.ops.training.train import calibrate_on_dev, encoder_b, fit_fast_a, head_voter, tuned_voter


@dataclass(frozen=True)
class Pair:
    voters: tuple[Voter, Voter]
    seconds: dict[str, float]


def fit_pair(
    settings: Settings,
    train: Sequence[Example],
    dev: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    mode: TrainMode | str,
    cache_dir: Path,
) -> Pair:
    """Voters A and B trained on `train` in `mode`, calibrated on `dev` (temperature + per-label thresholds)."""
    mode = TrainMode(mode)
    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"mode": mode})})
    torch.set_num_threads(settings.threads)
    version = f"eval-{mode.value}-{new_version()}"
    if mode.tunes_encoder:
        a, _, _, seconds_a = tuned_voter(settings, train, dev, taxonomy, version)
    else:
        _, a, _, _, seconds_a = fit_fast_a(settings, train, dev, taxonomy, version, cache_dir=cache_dir)
    b, _, seconds_b = head_voter(
        "B", settings, DiskCachedEncoder(encoder_b(settings), cache_dir), train, dev, taxonomy, version
    )
    for voter in (a, b) if mode.tunes_encoder else (b,):  # the fast voter A comes calibrated
        calibrate_on_dev(voter, dev, settings)
    return Pair((a, b), {"A": seconds_a, "B": seconds_b})
