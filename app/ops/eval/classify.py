"""`labelgate eval classify`: train both voters on any labelled dataset, calibrate on dev and score them and the gate
on test — accuracy, macro-F1, in-scope accuracy / OOS recall, agreement, auto decisions, risk–coverage and ECE."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import Settings, TrainMode
from app.core.data import Example, load_examples
from app.core.decision import VoterOutput, separation_margin, vote
from app.core.errors import ConfigError, DataError
from app.core.metrics import gate_metrics, macro_f1
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter
from app.ops.eval import scores
from app.ops.eval.datasets import prepare

log = logging.getLogger(__name__)
TARGET_PRECISION = 0.99
TARGET_COVERAGE = 0.85


@dataclass(frozen=True)
class Predictions:
    """One classifier's (a voter's, or the gate's averaged) view of a split."""

    labels: list[list[str]]
    confidence: np.ndarray  # probability of the weakest chosen leaf label
    said_oos: np.ndarray  # the classifier itself chose the OOS label


def predict(probs: np.ndarray, taxonomy: Taxonomy, *, multi_label: bool = True) -> Predictions:
    """Every leaf label at p >= 0.5, else the single most likely leaf (always the single most likely one on
    single-label data, where a second label can only be wrong); coarse parents added."""
    ids = taxonomy.ids
    leaves = np.array([taxonomy.index(x) for x in taxonomy.leaf_ids])
    sets, conf = [], np.zeros(len(probs))
    for i, row in enumerate(probs[:, leaves]):
        chosen = np.nonzero(row >= 0.5)[0] if multi_label else np.zeros(0, dtype=int)
        if not len(chosen):
            chosen = np.array([int(np.argmax(row))])
        conf[i] = float(row[chosen].min())
        sets.append(taxonomy.expand(ids[leaves[j]] for j in chosen))
    oos = taxonomy.oos_label
    return Predictions(sets, conf, np.array([oos is not None and oos in s for s in sets], dtype=bool))


def correct(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> np.ndarray:
    return np.array([set(p) == set(g) for p, g in zip(pred, gold, strict=True)], dtype=bool)


def with_oos(pred: Predictions, threshold: float, taxonomy: Taxonomy) -> list[list[str]]:
    """Rows under the out-of-scope threshold become the OOS label."""
    if taxonomy.oos_label is None:
        return pred.labels
    oos = taxonomy.expand([taxonomy.oos_label])
    return [oos if c < threshold else p for p, c in zip(pred.labels, pred.confidence, strict=True)]


def is_multi_label(examples: Sequence[Example], taxonomy: Taxonomy) -> bool:
    """Does any row carry more than one leaf label?"""
    return any(len(taxonomy.fine_only(ex.labels)) > 1 for ex in examples)


@dataclass(frozen=True)
class Scoring:
    """What every classifier is scored against: dev (for thresholds) and test, and how labels are decoded."""

    dev: Sequence[Example]
    test: Sequence[Example]
    taxonomy: Taxonomy
    multi_label: bool
    oos_recall: float = 0.7  # the OOS threshold is the lowest reaching this recall on dev

    @property
    def gold_dev(self) -> list[list[str]]:
        return [list(ex.labels) for ex in self.dev]

    @property
    def gold(self) -> list[list[str]]:
        return [list(ex.labels) for ex in self.test]

    def predict(self, probs: np.ndarray) -> Predictions:
        return predict(probs, self.taxonomy, multi_label=self.multi_label)


def classifier_report(p_dev: Predictions, p_test: Predictions, sc: Scoring) -> tuple[dict[str, Any], list[list[str]]]:
    """Metrics of one classifier on test, its OOS threshold chosen on dev; and its final test label sets."""
    taxonomy, gold = sc.taxonomy, sc.gold
    oos = taxonomy.oos_label
    threshold = 0.0
    if oos is not None:
        gold_dev = sc.gold_dev
        is_oos_dev = np.array([oos in g for g in gold_dev], dtype=bool)
        ok_dev = correct(p_dev.labels, gold_dev)
        threshold = scores.oos_threshold(p_dev.confidence, ok_dev, is_oos_dev, p_dev.said_oos, min_recall=sc.oos_recall)
    final = with_oos(p_test, threshold, taxonomy)
    ok, raw_ok = correct(final, gold), correct(p_test.labels, gold)
    in_scope = np.array([oos is None or oos not in g for g in gold], dtype=bool)
    conf = p_test.confidence
    report = {
        "accuracy": float(ok.mean()),
        "macro_f1": macro_f1(final, gold, taxonomy.ids),
        "in_scope_accuracy": float(ok[in_scope].mean()) if in_scope.any() else None,
        "oos_recall": float(ok[~in_scope].mean()) if oos is not None and (~in_scope).any() else None,
        "oos_threshold": round(threshold, 6) if oos is not None else None,
        "ece": scores.ece(conf, raw_ok),
        "aurc": scores.aurc(conf, raw_ok),
        "precision_at_coverage": {str(TARGET_COVERAGE): scores.precision_at_coverage(conf, raw_ok, TARGET_COVERAGE)},
        "coverage_at_precision": {str(TARGET_PRECISION): scores.coverage_at_precision(conf, raw_ok, TARGET_PRECISION)},
        "risk_coverage": scores.risk_coverage(conf, raw_ok),
        "reliability": scores.reliability(conf, raw_ok),
    }
    return report, final


def outputs(voter: Voter, probs: np.ndarray) -> list[VoterOutput]:
    return [
        VoterOutput(voter.name, dict(zip(voter.labels, row.tolist(), strict=True)), voter.thresholds, voter.version)
        for row in probs
    ]


def single_voter_decision(output: VoterOutput, taxonomy: Taxonomy, min_margin: float) -> list[str] | None:
    """What one voter alone would decide automatically (its accepted labels, clearly separated), else None."""
    accepted = taxonomy.expand(output.accepted)
    if accepted and separation_margin(output.probs, accepted) >= min_margin:
        return accepted
    return None


def gate_report(
    a: Voter, b: Voter, probs: dict[str, tuple[np.ndarray, np.ndarray]], sc: Scoring, settings: Settings
) -> dict[str, Any]:
    """Per voter and for the gate (the voters' mean probabilities; auto decisions from the product's vote)."""
    taxonomy, gold, min_margin = sc.taxonomy, sc.gold, settings.vote.min_margin
    test_outputs = {voter.name: outputs(voter, probs[voter.name][1]) for voter in (a, b)}
    voters, finals = {}, {}
    for name, (dev_probs, test_probs) in probs.items():
        voters[name], finals[name] = classifier_report(sc.predict(dev_probs), sc.predict(test_probs), sc)
        alone = [single_voter_decision(o, taxonomy, min_margin) for o in test_outputs[name]]
        voters[name] |= gate_metrics([x is not None for x in alone], [x or [] for x in alone], gold)
    p_dev, p_test = (sc.predict((probs["A"][k] + probs["B"][k]) / 2) for k in (0, 1))
    gate, final = classifier_report(p_dev, p_test, sc)
    votes = [
        vote(x, y, taxonomy, min_margin=min_margin, min_fine_agreement=settings.vote.min_fine_agreement)
        for x, y in zip(test_outputs["A"], test_outputs["B"], strict=True)
    ]
    auto = [v.decision == "auto" for v in votes]
    gate |= gate_metrics(auto, [v.labels for v in votes], gold)
    gate["agreement"] = float(correct(finals["A"], finals["B"]).mean())
    for name in voters:
        voters[name]["agreement"] = gate["agreement"]
    gate |= selective(p_dev, p_test, sc)
    gate["worst_labels"] = scores.worst_labels(_keys(final, taxonomy), _keys(gold, taxonomy))
    return gate | {"voters": voters}


def selective(p_dev: Predictions, p_test: Predictions, sc: Scoring) -> dict[str, Any]:
    """The gate with one confidence threshold picked on dev for the target precision, applied to test."""
    ok_dev = correct(p_dev.labels, sc.gold_dev)
    threshold = scores.threshold_for_precision(p_dev.confidence, ok_dev, TARGET_PRECISION)
    decided = p_test.confidence >= threshold
    ok = correct(p_test.labels, sc.gold)
    return {
        "selective": {
            "target_precision": TARGET_PRECISION,
            "threshold": round(threshold, 6),
            "coverage": float(decided.mean()),
            "precision": float(ok[decided].mean()) if decided.any() else 0.0,
        }
    }


def _keys(sets: Sequence[Sequence[str]], taxonomy: Taxonomy) -> list[str]:
    return ["+".join(taxonomy.fine_only(s)) or "(none)" for s in sets]


def dataset_dir(settings: Settings, src: Path, max_train: int | None, oos_label: str | None) -> Path:
    """Where the prepared copy of a dataset lives (one per source path and preparation options)."""
    key = hashlib.sha1(f"{src.resolve()}\0{max_train}\0{oos_label}".encode()).hexdigest()[:10]
    return settings.home / "eval" / f"{src.resolve().name}-{key}"


def run_classify_eval(
    settings: Settings,
    src: Path,
    *,
    mode: str = "fast",
    oos_label: str | None = None,
    oos_recall: float = 0.7,
    max_train: int | None = None,
) -> dict[str, Any]:
    """Prepare `src` (a public dataset dir, or a labelgate data dir used as it is), train both voters in `mode`,
    calibrate on dev, score on test; the JSON report."""
    from app.ops.training.fit import fit_pair

    if mode not in set(TrainMode):
        raise ConfigError(f"mode must be one of {[m.value for m in TrainMode]}, not {mode!r}")
    started = time.perf_counter()
    native = (src / "taxonomy.yaml").is_file() and (src / "queries").is_dir()  # a labelgate data dir, e.g. data/
    if native:
        work = src
    else:
        work = prepare(src, dataset_dir(settings, src, max_train, oos_label), max_train=max_train, oos_label=oos_label)
    taxonomy = Taxonomy.load(work / "taxonomy.yaml")
    if native and oos_label is not None:
        if oos_label not in taxonomy:
            raise DataError(f"{work / 'taxonomy.yaml'}: oos label {oos_label!r} is not a label")
        taxonomy = dataclasses.replace(taxonomy, oos_label=oos_label)
    data = {name: load_examples(work / "queries" / f"{name}.jsonl", taxonomy) for name in ("train", "dev", "test")}
    pair = fit_pair(
        settings, data["train"], data["dev"], taxonomy, mode=mode, cache_dir=settings.home / "eval" / "cache"
    )
    scored = time.perf_counter()
    probs = {
        v.name: (v.probs([ex.text for ex in data["dev"]]), v.probs([ex.text for ex in data["test"]]))
        for v in pair.voters
    }
    multi = is_multi_label(data["train"], taxonomy)
    report = gate_report(*pair.voters, probs, Scoring(data["dev"], data["test"], taxonomy, multi, oos_recall), settings)
    for name, voter in zip(("A", "B"), pair.voters, strict=True):
        report["voters"][name] |= {
            "train_seconds": round(pair.seconds[name], 1),
            "encoder": voter.meta["encoder"],
            "kind": voter.meta["kind"],
        }
    return {
        "dataset": str(src),
        "mode": TrainMode(mode).value,
        "rows": {name: len(rows) for name, rows in data.items()},
        "labels": len(taxonomy.ids),
        "oos_label": taxonomy.oos_label,
        "multi_label": multi,
        "oos_recall_target": oos_recall if taxonomy.oos_label else None,
        **report,
        "train_seconds": round(sum(pair.seconds.values()), 1),
        "eval_seconds": round(time.perf_counter() - scored, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
