"""`labelgate train`: train both voters on the demo data, calibrate on dev, score on test, save a new version."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from app.core.config import Settings, TrainMode
from app.core.data import DemoData, Example
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter
from app.core.voters.calibrate import fit_temperature, label_thresholds, sigmoid
from app.core.voters.encoders import USE_SPEC, DiskCachedEncoder, TextEncoder, load_encoder
from app.core.voters.export import export_int8
from app.core.voters.heads import MLPHead
from app.core.voters.onnx import INT8_FILE, ort_logits_fn
from app.core.voters.store import (
    KIND_FULL,
    KIND_HEAD,
    KIND_LORA,
    full_writer,
    head_logits_fn,
    head_writer,
    lora_writer,
    new_version,
    pooled_logits_fn,
    promote_pair,
    save_voter,
)
from app.ops.training.evaluate import evaluate, feedback_learned
from app.ops.training.loops import targets, train_head, train_voter_a
from app.ops.training.splits import Splits, load_splits

log = logging.getLogger(__name__)


def calibrate(voter: Voter, dev: Sequence[Example], *, target_precision: float, floor: float, ceiling: float) -> Voter:
    """Temperature on dev logits, then per-label thresholds for the target precision."""
    logits = voter.logits([ex.text for ex in dev])
    y = targets(dev, voter.labels)
    voter.temperature = fit_temperature(logits, y)
    thresholds = label_thresholds(
        sigmoid(logits / voter.temperature), y, target_precision=target_precision, floor=floor, ceiling=ceiling
    )
    voter.thresholds = {label: round(float(t), 6) for label, t in zip(voter.labels, thresholds, strict=True)}
    return voter


MAX_FEEDBACK_REPEAT = 10  # one lone review of a new label must not outweigh a whole label's training rows


def merge_examples(
    base: Sequence[Example], extra: Sequence[Example], *, repeat: int = 1, min_label_rows: int = 0
) -> list[Example]:
    """Training rows plus confirmed feedback: each feedback row `repeat` times, and more (at most
    MAX_FEEDBACK_REPEAT) while one of its labels would still have fewer than `min_label_rows` rows — a label people
    just added has nothing but its reviews. A feedback row replaces a training row with the same text."""
    override = {ex.text: ex for ex in extra}
    kept = [ex for ex in base if ex.text not in override]
    have = Counter(label for ex in kept for label in ex.labels)
    given = Counter(label for ex in override.values() for label in ex.labels)
    rows = list(kept)
    for ex in override.values():
        wanted = [-(-(min_label_rows - have[label]) // given[label]) for label in ex.labels]
        rows += [ex] * min(MAX_FEEDBACK_REPEAT, max([repeat, *wanted]))
    return rows


def tuned_voter(
    settings: Settings, train: Sequence[Example], dev: Sequence[Example], taxonomy: Taxonomy, version: str
) -> tuple[Voter, Any, Any, float]:
    """Voter A fine-tuned in the settings' mode, full or LoRA (uncalibrated), its tokenizer and model, and the training
    seconds."""
    cfg, started = settings.train, time.perf_counter()
    tokenizer, model = train_voter_a(
        train, dev, taxonomy, encoder_spec=settings.encoder_a_id, prefix=settings.query_prefix, cfg=cfg
    )
    meta = {
        "kind": KIND_FULL if cfg.mode is TrainMode.full else KIND_LORA,
        "encoder": settings.encoder_a_id,
        "prefix": settings.query_prefix,
        "max_length": cfg.max_length,
        "lora_r": cfg.lora_r,
        "train_rows": len(train),
    }
    logits_fn = pooled_logits_fn(tokenizer, model, settings.query_prefix, cfg.max_length)
    return Voter("A", version, taxonomy.ids, logits_fn, meta=meta), tokenizer, model, time.perf_counter() - started


def head_voter(
    name: str,
    settings: Settings,
    encoder: TextEncoder,
    train: Sequence[Example],
    dev: Sequence[Example],
    taxonomy: Taxonomy,
    version: str,
    *,
    weight: str = "weight_b",
    augment: bool = True,
) -> tuple[Voter, MLPHead, float]:
    """A head on a frozen encoder (uncalibrated), the head, and the training seconds (embedding included)."""
    started = time.perf_counter()
    head = train_head(train, dev, taxonomy, encoder=encoder, cfg=settings.train, weight=weight, augment=augment)
    meta = {
        "kind": KIND_HEAD,
        "encoder": encoder.spec,
        "prefix": getattr(encoder, "prefix", ""),
        "hidden": head.net[1].out_features,
        "train_rows": len(train),
    }
    voter = Voter(name, version, taxonomy.ids, head_logits_fn(encoder, head), meta=meta)
    return voter, head, time.perf_counter() - started


def encoder_b(settings: Settings) -> TextEncoder:
    """Voter B's frozen encoder: USE (no prefix) or a checkpoint with the query prefix."""
    plain = settings.encoder_b == USE_SPEC
    return load_encoder(settings.encoder_b, prefix="" if plain else settings.query_prefix, threads=settings.threads)


def calibrate_on_dev(voter: Voter, dev: Sequence[Example], settings: Settings) -> Voter:
    """`calibrate` with the settings' precision target and threshold bounds."""
    cfg = settings.train
    return calibrate(
        voter, dev, target_precision=cfg.target_precision, floor=cfg.threshold_floor, ceiling=cfg.threshold_ceiling
    )


# voter A of one training mode: (voter to save, voter that serves, its writer, voters by runtime, seconds)
FittedA = tuple[Voter, Voter, Callable[[Path], None], dict[str, Voter], float]


def fit_tuned_a(
    settings: Settings, train: Sequence[Example], dev: Sequence[Example], taxonomy: Taxonomy, version: str
) -> FittedA:
    """Fine-tuned voter A (full or LoRA), exported to int8 ONNX and calibrated for each runtime."""
    voter_a, tokenizer, model, seconds = tuned_voter(settings, train, dev, taxonomy, version)
    scratch = Path(tempfile.mkdtemp(prefix="labelgate-onnx-"))
    int8_file = export_int8(model, tokenizer, scratch / INT8_FILE)
    voter_a_int8 = dataclasses.replace(
        voter_a,
        logits_fn=ort_logits_fn(
            int8_file, settings.encoder_a_id, prefix=settings.query_prefix, max_length=settings.train.max_length
        ),
    )
    for voter in (voter_a, voter_a_int8):
        calibrate_on_dev(voter, dev, settings)
    voter_a.meta["runtimes"] = {
        "onnx-int8": {"file": INT8_FILE, "temperature": voter_a_int8.temperature, "thresholds": voter_a_int8.thresholds}
    }

    def write(path: Path) -> None:
        (full_writer if settings.train.mode is TrainMode.full else lora_writer)(model)(path)
        shutil.move(str(int8_file), str(path / INT8_FILE))
        shutil.rmtree(scratch, ignore_errors=True)

    serving = voter_a_int8 if settings.voter_a_runtime == "onnx-int8" else voter_a
    return voter_a, serving, write, {"torch": voter_a, "onnx-int8": voter_a_int8}, seconds


def fit_fast_a(
    settings: Settings,
    train: Sequence[Example],
    dev: Sequence[Example],
    taxonomy: Taxonomy,
    version: str,
    *,
    cache_dir: Path | None = None,
) -> FittedA:
    """Fast voter A: a head on the int8 ONNX export of its frozen encoder (the retrieval embedder's export when both
    are e5), trained and calibrated on exactly what serves; embeddings kept under `cache_dir` when given."""
    from app.core.embedder import build_int8
    from app.core.voters.onnx import OnnxEncoder

    path = build_int8(settings, settings.encoder_a_id)
    prefix = settings.prompts(settings.encoder_a_id).classify  # e5: "query: "; EmbeddingGemma: its Classification
    encoder: TextEncoder = OnnxEncoder(settings.encoder_a_id, path, threads=settings.threads, prefix=prefix)
    if cache_dir is not None:
        encoder = DiskCachedEncoder(encoder, cache_dir)
    voter, head, seconds = head_voter(
        "A", settings, encoder, train, dev, taxonomy, version, weight="weight", augment=False
    )
    voter.meta |= {"onnx": str(path.resolve()), "runtime": "onnx-int8"}
    calibrate_on_dev(voter, dev, settings)
    return voter, voter, head_writer(head), {"onnx-int8": voter}, seconds


def train_voters(
    settings: Settings,
    *,
    extra: Sequence[Example] = (),
    reviewed: Sequence[Example] = (),
    promote: bool = True,
    splits: Splits | None = None,
) -> dict[str, Any]:
    """Train A (fine-tuned, full or LoRA, or a head on the frozen encoder with `train.mode=fast`) and B on train
    (+ extra rows), calibrate on dev, score on test (and on the `reviewed` rows: feedback_learned), save a new version
    (made current unless promote=False) and return the report (also written to home). `splits`: what load_splits
    returns, when the caller has it already."""
    torch.set_num_threads(settings.threads)
    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    splits = splits or load_splits(settings, data, taxonomy)  # the data dir's query splits, or the cold start's
    train, dev, test, docs, cfg = splits.train, splits.dev, splits.test, splits.docs, settings.train
    train = merge_examples(
        [*train, *docs], extra, repeat=cfg.feedback_repeat, min_label_rows=cfg.feedback_min_label_rows
    )
    # the epoch kept and the thresholds are chosen on dev plus the confirmed feedback: a label people just added has
    # no dev rows, and a version that did not learn what they confirmed is no version to keep
    select = [*dev, *{ex.text: ex for ex in extra}.values()]
    version = new_version()
    fit_a = fit_fast_a if settings.train.mode is TrainMode.fast else fit_tuned_a
    voter_a, serving_a, write_a, by_runtime, seconds_a = fit_a(settings, train, select, taxonomy, version)
    voter_b, head, seconds_b = head_voter("B", settings, encoder_b(settings), train, select, taxonomy, version)
    calibrate_on_dev(voter_b, select, settings)
    report = {
        "version": version,
        "mode": settings.train.mode.value,
        "train_rows": len(train),
        "doc_rows": len(docs),
        "cold_start": splits.cold_start,
        "extra_rows": len(extra),
        "train_seconds": {"A": round(seconds_a, 1), "B": round(seconds_b, 1)},
        "runtime_a": serving_a.meta.get("runtime", settings.voter_a_runtime),
        "test": evaluate(serving_a, voter_b, test, taxonomy, settings.vote),
        "dev": evaluate(serving_a, voter_b, dev, taxonomy, settings.vote),
        # the serving pair on the people-reviewed rows (retrain's promotion gate; None without reviews)
        "feedback_learned": feedback_learned([serving_a, voter_b], reviewed, taxonomy),
        "test_by_runtime_a": {
            name: _gate_summary(evaluate(a, voter_b, test, taxonomy, settings.vote)) for name, a in by_runtime.items()
        },
    }
    voter_a.meta["metrics"] = voter_b.meta["metrics"] = report["test"]
    if (reliability := gate_reliability(report["dev"])) is not None:  # how far the rerank may trust their labels
        voter_a.meta["gate_reliability"] = voter_b.meta["gate_reliability"] = reliability
    if (provisional := report["dev"].get("provisional_precision")) is not None:  # ... and an escalation's coarse ones
        voter_a.meta["provisional_reliability"] = voter_b.meta["provisional_reliability"] = round(provisional, 4)
    voter_a.meta["doc_rows"] = voter_b.meta["doc_rows"] = len(docs)
    save_voter(settings.voters_dir, voter_a, write_a, make_current=False)
    save_voter(settings.voters_dir, voter_b, head_writer(head), make_current=False)
    if promote:  # both saved whole: now switch the pair in one step
        promote_pair(settings.voters_dir, version, note="train")
        write_report(settings, report)
    return report


def gate_reliability(dev: dict[str, Any]) -> float | None:
    """The exact accuracy of the pair's automatic decisions on the dev split: the share of the voters' own labels the
    rerank may trust (app/core/softgate.py query_trust); None when nothing on dev was decided automatically."""
    if not dev.get("rows") or not dev.get("auto_coverage"):
        return None
    return round(float(dev["auto_precision"]), 4)


def _gate_summary(report: dict[str, Any]) -> dict[str, float]:
    keys = ("auto_coverage", "auto_precision")
    return {k: round(float(report[k]), 4) for k in keys} | {
        "macro_f1_A": round(float(report["voters"]["A"]["macro_f1"]), 4),
        "accuracy_A": round(float(report["voters"]["A"]["accuracy"]), 4),
    }


def write_report(settings: Settings, report: dict[str, Any]) -> None:
    """The current version's training report, kept beside the voters."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "train_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
