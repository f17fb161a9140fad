"""`labelgate retrain` and `labelgate models rollback`: new voter versions from training data + confirmed feedback,
promoted only when they are not worse on the held-out test split; old versions are kept."""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from app.core.data import DemoData
from app.core.errors import InputError
from app.core.feedback import FeedbackStore
from app.core.taxonomy import Taxonomy
from app.core.voters.store import current_version, load_pair, promote_pair, promotion_history, recover_switch
from app.ops.training.evaluate import evaluate
from app.ops.training.splits import load_splits
from app.ops.training.train import train_voters, write_report

VOTERS = ("A", "B")


def gate_scores(report: dict[str, Any]) -> dict[str, float]:
    """The numbers the promotion gate compares, from an evaluate() report."""
    scores = {f"macro_f1_{name}": float(report["voters"][name]["macro_f1"]) for name in VOTERS}
    return scores | {"auto_precision": float(report["auto_precision"]), "auto_coverage": float(report["auto_coverage"])}


LEARNED = "feedback_learned"


def promotion_decision(
    current: dict[str, float] | None,
    candidate: dict[str, float],
    *,
    tolerance: float = 0.0,
    min_learned: float = 0.0,
) -> tuple[bool, list[str]]:
    """Promote when no voter's macro-F1, not the gate's auto precision and not its auto coverage is worse (beyond
    tolerance), and the candidate labels at least `min_learned` of the people-reviewed feedback rows exactly as
    reviewed (a candidate that did not learn what people confirmed is not promoted). Coverage is gated too: a round
    of feedback must not send more of the traffic to people (`demo --loop`, seed 1 on 2026-12-06: test coverage
    0.518 → 0.455 at precision 0.902 → 0.922, and the held-out probes' escalation 0.50 → 0.88, was promoted)."""
    ok, lines = True, []
    learned = candidate.get(LEARNED)
    if learned is not None:
        short = learned < min_learned
        ok &= not short
        lines.append(f"{LEARNED}: {learned:.4f} (needs ≥ {min_learned:.2f}) {'too few' if short else 'ok'}")
    if current is None:
        return ok, [*lines, "no current version: the candidate becomes current" if ok else "no current version"]
    for key in sorted(k for k in candidate if k != LEARNED):
        before, after = current.get(key, 0.0), candidate[key]
        worse = after < before - tolerance
        ok &= not worse
        verdict = "worse" if worse else "ok"
        lines.append(f"{key}: {before:.4f} → {after:.4f} ({after - before:+.4f}) {verdict}")
    return ok, lines


def retrain(settings: Settings) -> dict[str, Any]:
    recover_switch(settings.voters_dir)
    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    splits = load_splits(settings, data, taxonomy)  # once: the candidate trains on them, both pairs score on test
    test = splits.test
    store = FeedbackStore(settings.feedback_db_url)
    feedback = store.training_examples(taxonomy)
    reviewed = store.training_examples(taxonomy, sources=("human",))
    before_version = current_version(settings.voters_dir, "A")
    current = None
    if before_version is not None:
        a, b = load_pair(settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime)
        current = gate_scores(evaluate(a, b, test, taxonomy, settings.vote))
    report = train_voters(settings, extra=feedback, reviewed=reviewed, promote=False, splits=splits)
    candidate = gate_scores(report["test"])
    if report[LEARNED] is not None:
        candidate[LEARNED] = report[LEARNED]
    promoted, comparison = promotion_decision(
        current,
        candidate,
        tolerance=settings.train.promotion_tolerance,
        min_learned=settings.train.min_feedback_learned,
    )
    if promoted:  # until here nothing that serves changed: the new version sat beside the current one
        note = f"retrain with {len(feedback)} feedback rows"
        promote_pair(settings.voters_dir, report["version"], note=note, names=VOTERS)
        write_report(settings, report)
    return {
        "feedback_rows": len(feedback),
        "current": {"version": before_version, "test": current},
        "candidate": {
            "version": report["version"],
            "test": candidate,
            "train_rows": report["train_rows"],
            "doc_rows": report["doc_rows"],
        },
        "comparison": comparison,
        "promoted": promoted,
        "now_current": report["version"] if promoted else before_version,
    }


def rollback(settings: Settings) -> dict[str, str]:
    """Make the version promoted before the current one current again (both voters); the current one is kept."""
    recover_switch(settings.voters_dir)
    now = current_version(settings.voters_dir, "A")
    promoted = list(
        dict.fromkeys(e["version"] for e in promotion_history(settings.voters_dir) if e["note"] != "rollback")
    )
    if now not in promoted or promoted.index(now) == 0:
        raise InputError(f"nothing to roll back to: {now or 'no version'} is the oldest promoted version")
    target = promoted[promoted.index(now) - 1]
    for name in VOTERS:
        if not (settings.voters_dir / name / target).is_dir():
            raise InputError(f"version {target} of voter {name} is gone from {settings.voters_dir / name}")
    promote_pair(settings.voters_dir, target, note="rollback", names=VOTERS)
    return {"from": now or "", "to": target}
