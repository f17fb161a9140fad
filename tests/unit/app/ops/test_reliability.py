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
