"""The trainable parts: voter A's encoder + mean-pool + linear head, voter B's MLP head on frozen embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from app.core.voters.encoders import mean_pool


class PooledClassifier(nn.Module):
    """Encoder (LoRA-adapted while training) → mean pool over the mask → dropout → linear head.

    Classifying from the mean-pooled output avoids the untrained BERT pooler (MODELS.md pitfall).
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"logits": self.head(self.dropout(mean_pool(hidden, attention_mask)))}


class MLPHead(nn.Module):
    """Two-layer head over frozen sentence embeddings."""

    def __init__(self, dim: int, num_labels: int, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, label_weights: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE where each label's term is scaled by its class weight (售后 2.0, 投诉 3.0, …)."""
    per = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (per * label_weights).sum(dim=1).mean() / label_weights.mean()


def pooled_logits(
    tokenizer: Any, model: PooledClassifier, texts: Sequence[str], *, prefix: str, max_length: int, batch_size: int = 64
) -> np.ndarray:
    """Logits of a PooledClassifier in eval mode, batched by length."""
    model.eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                [prefix + texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out[idx] = model(batch["input_ids"], batch["attention_mask"])["logits"].numpy()
    return out
