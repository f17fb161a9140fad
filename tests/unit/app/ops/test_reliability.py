"""`labelgate train` measures how far the voters' own labels can be trusted (their automatic decisions' exact accuracy
on dev) and keeps it with them; the served rerank reads it back (Components.label_reliability)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.config import load_settings
from app.core.voters.store import load_pair
from app.ops.training.train import gate_reliability
from tests.unit.app.cli.test_cli import env, run

__all__ = ["env"]  # the CLI's tiny data dir and LABELGATE_* settings (a fixture)


def test_gate_reliability_is_the_dev_auto_precision() -> None:
    assert gate_reliability({"rows": 10, "auto_coverage": 0.5, "auto_precision": 0.8}) == 0.8
    assert gate_reliability({"rows": 10, "auto_coverage": 0.0, "auto_precision": 0.0}) is None  # nothing decided
    assert gate_reliability({"rows": 0}) is None


def test_training_keeps_the_reliability_with_the_voters(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.ops.training.train as train

    seen: list[dict[str, object]] = []

    def measured(dev: dict[str, object]) -> float:  # the tiny random voters decide nothing themselves: say 0.77
        seen.append(dev)
        return 0.77

    monkeypatch.setattr(train, "gate_reliability", measured)
    code, out = run("train", "--json")
    assert code == 0, out
    assert seen == [json.loads(out)["dev"]]  # measured on the dev split's report, never on test
    voters = load_pair(load_settings().voters_dir)
    assert [v.meta.get("gate_reliability") for v in voters] == [0.77, 0.77]
    dev = json.loads(out)["dev"]  # the tiny voters escalate: how often the provisional coarse filter was right
    assert dev["escalated"] and 0.0 <= dev["provisional_precision"] <= 1.0
    assert [v.meta.get("provisional_reliability") for v in voters] == [round(dev["provisional_precision"], 4)] * 2


def test_provisional_precision_counts_escalations_whose_coarse_candidates_are_all_right(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import VoteSettings
    from app.core.data import Example
    from app.ops.training.evaluate import evaluate
    from app.testing import keyword_voter

    a = keyword_voter("A", taxonomy, {"屏幕": ["屏幕"], "活动优惠": ["活动"]})
    b = keyword_voter("B", taxonomy, {"电池": ["碎"], "屏幕": ["好"]})
    rows = [
        Example("屏幕碎了", ("售后", "屏幕")),  # 屏幕 vs 电池: escalated, both under 售后 — provisional filter right
        Example("活动碎了", ("销售", "活动优惠")),  # 活动优惠 vs 电池: escalated, 售后 among its coarse filter — wrong
        Example("屏幕好了", ("售后", "屏幕")),  # both 屏幕: automatic, not counted
    ]
    report = evaluate(a, b, rows, taxonomy, VoteSettings())
    assert report["escalated"] == 2 and report["provisional_precision"] == 0.5
    assert evaluate(a, b, rows[2:], taxonomy, VoteSettings())["provisional_precision"] is None  # none escalated
