"""Training the two voters, deliberately differently (the seed's "two differently trained voters").

Voter A: the encoder fine-tuned with LoRA (r=8 on query/value), mean-pooled, a linear head over fine+coarse labels,
         class weights `weight` from taxonomy.yaml in a custom Trainer.compute_loss.
Voter B: a frozen, different encoder (USE-multilingual CNN by default) with an MLP head, paraphrase-augmented rare
         labels and class weights `weight_b`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, TaskType, get_peft_model
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.optimization import get_linear_schedule_with_warmup

from app.core.config import TrainMode, TrainSettings
from app.core.data import Example
from app.core.errors import ConfigError
from app.core.taxonomy import Taxonomy
from app.core.voters.encoders import TextEncoder, check_model_path
from app.core.voters.heads import MLPHead, PooledClassifier, pooled_logits, weighted_bce
from app.ops.training.augment import augment_rare

log = logging.getLogger(__name__)


def targets(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """Multi-hot (n, labels) float32 matrix."""
    index = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(examples), len(labels)), dtype=np.float32)
    for i, ex in enumerate(examples):
        for label in ex.labels:
            out[i, index[label]] = 1.0
    return out


def prior_bias(layer: torch.nn.Module, y: np.ndarray) -> None:
    """Start each label's output bias at the logit of its training frequency. With many labels (CLINC150: 160) a
    zero bias means p = 0.5 everywhere, and the first epochs of BCE are spent pushing every label down."""
    prior = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4)
    bias: torch.Tensor = layer.bias  # type: ignore[assignment]
    with torch.no_grad():
        bias.copy_(torch.from_numpy(np.log(prior / (1 - prior)).astype(np.float32)))


class WeightedTrainer(Trainer):
    """Trainer whose loss is the class-weighted multi-label BCE (the seed's weighted LoRA fine-tuning)."""

    def __init__(self, *args: Any, label_weights: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_weights = label_weights

    def compute_loss(  # type: ignore[override]
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
    ) -> Any:
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"]
        loss = weighted_bce(logits, labels.to(logits.dtype), self.label_weights.to(logits.device))
        return (loss, outputs) if return_outputs else loss


class _Rows(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def build_voter_a_model(encoder_spec: str, num_labels: int, cfg: TrainSettings) -> tuple[Any, PooledClassifier]:
    check_model_path(encoder_spec)
    tokenizer = AutoTokenizer.from_pretrained(encoder_spec)
    base = AutoModel.from_pretrained(encoder_spec)
    if cfg.mode is TrainMode.full:  # every layer learns; the token-embedding table (most weights) stays as built
        base.get_input_embeddings().weight.requires_grad_(False)
        return tokenizer, PooledClassifier(base, base.config.hidden_size, num_labels)
    names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    if not {"query", "value"} <= names:  # e.g. EmbeddingGemma: q_proj / v_proj
        raise ConfigError(
            f"train.mode=lora adapts BERT-style 'query'/'value' layers, which {encoder_spec} does not have: "
            "set LABELGATE_TRAIN__MODE=fast (a head on the frozen encoder) or full"
        )
    lora = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.1,
        target_modules=["query", "value"],
    )
    model = PooledClassifier(get_peft_model(base, lora), base.config.hidden_size, num_labels)
    return tokenizer, model


class BestEpoch(TrainerCallback):
    """After each epoch, score dev; at the end restore the trainable weights (LoRA + head) of the best epoch."""

    def __init__(self, model: PooledClassifier, dev_loss: Callable[[], float]) -> None:
        self.model, self.dev_loss = model, dev_loss
        self.best = float("inf")
        self.best_epoch = 0
        self.state: dict[str, torch.Tensor] = {}

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        loss = self.dev_loss()
        self.model.train()
        log.info("voter A epoch %.0f: dev loss %.4f", state.epoch, loss)
        if loss < self.best:
            self.best, self.best_epoch = loss, round(state.epoch)
            self.state = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def restore(self) -> None:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if name in self.state:
                    param.copy_(self.state[name])


def budget_epochs(rows: int, cfg: TrainSettings) -> int:
    """`epochs_full` or `epochs_a` (LoRA), or fewer whole epochs when they would exceed `max_steps_a` steps
    (retrain time stays bounded as feedback grows: 5k rows → 2 epochs, ~3.5 min on 2 cores)."""
    per_epoch = -(-rows // cfg.batch_size)
    epochs = cfg.epochs_full if cfg.mode is TrainMode.full else cfg.epochs_a
    return max(1, min(epochs, round(cfg.max_steps_a / max(per_epoch, 1))))


def train_voter_a(
    train: Sequence[Example],
    dev: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    encoder_spec: str,
    prefix: str,
    cfg: TrainSettings,
) -> tuple[Any, PooledClassifier]:
    """Full or LoRA fine-tuning with the class-weighted loss, keeping the epoch with the best dev loss."""
    torch.manual_seed(cfg.seed)
    labels = taxonomy.ids
    tokenizer, model = build_voter_a_model(encoder_spec, len(labels), cfg)
    y = targets(train, labels)
    prior_bias(model.head, y)
    rows = []
    for ex, target in zip(train, y, strict=True):
        enc = tokenizer(prefix + ex.text, truncation=True, max_length=cfg.max_length)
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": target.tolist()})
    head_params = list(model.head.parameters())
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    encoder_lr = cfg.lr_full if cfg.mode is TrainMode.full else cfg.lr_lora
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": encoder_lr}, {"params": head_params, "lr": cfg.lr_head}], weight_decay=0.01
    )
    weights = torch.tensor([taxonomy[x].weight for x in labels])
    dev_y = torch.tensor(targets(dev, labels))

    def dev_loss() -> float:
        logits = pooled_logits(tokenizer, model, [ex.text for ex in dev], prefix=prefix, max_length=cfg.max_length)
        return float(weighted_bce(torch.tensor(logits), dev_y, weights))

    best = BestEpoch(model, dev_loss)
    epochs = budget_epochs(len(rows), cfg)
    steps = epochs * -(-len(rows) // cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, steps // 15), steps)
    with tempfile.TemporaryDirectory(prefix="labelgate-train-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=cfg.batch_size,
            num_train_epochs=epochs,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=cfg.seed,
            remove_unused_columns=False,
            logging_steps=max(1, steps // 10),
            dataloader_num_workers=0,
            # KB doc chunks run to max_length while queries are ~20 tokens: batches of similar lengths pad far less
            train_sampling_strategy="group_by_length",
        )
        trainer = WeightedTrainer(
            model=model,
            args=args,
            train_dataset=_Rows(rows),
            data_collator=DataCollatorWithPadding(tokenizer),
            optimizers=(optimizer, scheduler),
            label_weights=weights,
            callbacks=[best],
        )
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs; stdout is for results (--json)
            trainer.train()
    best.restore()
    log.info("voter A: kept epoch %d of %d (dev loss %.4f)", best.best_epoch, epochs, best.best)
    model.eval()
    return tokenizer, model


HEAD_BATCH = 128  # mini-batch of the heads on frozen embeddings


def head_epochs(rows: int, cfg: TrainSettings, batch_size: int = HEAD_BATCH) -> int:
    """`epochs_b`, or fewer when they would exceed `max_steps_b` mini-batches (CLINC150's 15k rows: 42 epochs)."""
    per_epoch = -(-rows // batch_size)
    return max(1, min(cfg.epochs_b, cfg.max_steps_b // max(per_epoch, 1)))


def train_head(
    train: Sequence[Example],
    dev: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    encoder: TextEncoder,
    cfg: TrainSettings,
    weight: str = "weight_b",
    augment: bool = True,
) -> MLPHead:
    """MLP head on frozen embeddings of the train set (rare labels paraphrase-augmented unless `augment` is off),
    class weights from the taxonomy's `weight` or `weight_b`; keeps the epoch with the best dev loss. Voter B, and
    voter A in the fast mode (frozen encoder, no LoRA)."""
    torch.manual_seed(cfg.seed)
    labels = taxonomy.ids
    rows = augment_rare(train, below=cfg.augment_rare_below, seed=cfg.seed) if augment else list(train)
    log.info("head on %s: %d rows (%d original)", encoder.spec, len(rows), len(train))
    x = torch.tensor(encoder.encode([ex.text for ex in rows]))
    y = torch.tensor(targets(rows, labels))
    x_dev, y_dev = torch.tensor(encoder.encode([ex.text for ex in dev])), torch.tensor(targets(dev, labels))
    head = MLPHead(x.shape[1], len(labels))
    prior_bias(head.net[4], y.numpy())
    weights = torch.tensor([getattr(taxonomy[label], weight) for label in labels])
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr_head, weight_decay=1e-3)
    best, best_state = float("inf"), {k: v.clone() for k, v in head.state_dict().items()}
    epochs = head_epochs(len(x), cfg)
    for epoch in tqdm(range(epochs), desc=f"head {encoder.spec[-24:]}", unit="epoch", leave=False):
        head.train()
        for batch in torch.randperm(len(x)).split(HEAD_BATCH):
            optimizer.zero_grad()
            weighted_bce(head(x[batch]), y[batch], weights).backward()
            optimizer.step()
        if epoch % 5 == 4 or epoch == epochs - 1:
            head.eval()
            with torch.inference_mode():
                loss = float(weighted_bce(head(x_dev), y_dev, weights))
            if loss < best:
                best, best_state = loss, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.eval()
    return head
