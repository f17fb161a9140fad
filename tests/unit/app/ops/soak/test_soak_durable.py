"""Durable reviews: a real child process resuming paused threads is SIGKILLed; after the restart nothing is lost."""

from __future__ import annotations

from pathlib import Path

from app.core.config import Settings
from app.ops.soak import COUNTERS
from app.ops.soak.durable import run


def test_sigkill_mid_resume_loses_and_doubles_nothing(soak_source: Settings, tmp_path: Path) -> None:
    result = run(soak_source, tmp_path / "durable", quick=True, threads=30)
    figures = result.figures
    assert result.counters == dict.fromkeys(COUNTERS, 0), (result.counters, figures)
    assert figures["threads"] == 30 and figures["not_paused"] == 0
    assert 9 <= figures["killed_after"] <= 15  # killed part-way: 30–50 % finished by the child
    # every thread the child did not finish was listed once after the restart, or carried on from its checkpoint
    left = 30 - figures["killed_after"] - figures["ended_after_last_announcement"]
    assert figures["listed_after_restart"] + figures["unfinished_runs_finished"] == left
    assert figures["resumed_after_restart"] == figures["listed_after_restart"]
    assert figures["models"]["voters"] == "trained"
    assert not (soak_source.home / "checkpoints.sqlite").exists()  # the scratch home took every write
