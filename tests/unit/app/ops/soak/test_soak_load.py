"""Load: concurrent callers through the Python API and HTTP; the per-thread check must see a leak when one happens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.ops.soak import COUNTERS
from app.ops.soak.load import FIELDS, Tally, _caller, run


@pytest.mark.server  # the HTTP channel: uvicorn on localhost
def test_small_load_over_python_and_http_has_no_errors_or_leaks(soak_source: Settings, tmp_path: Path) -> None:
    result = run(soak_source, tmp_path / "load", quick=True, callers=4, per_caller=5)
    assert result.counters == dict.fromkeys(COUNTERS, 0), result.figures
    for channel in ("python", "http"):
        figures = result.figures[channel]
        assert figures["turns"] == 20 and figures["errors"] == 0 and figures["leaks"] == 0
        assert figures["qps"] > 0 and 0 < figures["ask"]["p50_ms"] <= figures["ask"]["p99_ms"]
    assert result.figures["still_pending"] == 0


def test_the_per_thread_check_counts_a_leaked_answer_or_review() -> None:
    reference = {q: {key: None for key in FIELDS} | {"labels": [q], "pending_review": True} for q in ("q1", "q2")}
    answers: dict[str, dict[str, Any]] = {}

    def leaky_ask(query: str, tid: str) -> dict[str, Any]:
        out = {key: None for key in FIELDS} | {
            "thread_id": tid,
            "query": query,
            "labels": [query],
            "pending_review": True,
        }
        answers[tid] = out
        if tid.endswith("-1"):  # another thread's answer comes back
            return answers[tid.replace("-1", "-0")]
        return out

    def resolve(tid: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        review = {"reviewer": "someone-else" if tid.endswith("-2") else reviewer}
        return {"thread_id": tid, "query": answers[tid]["query"], "labels": labels, "label_source": "human"} | {
            "review": review,
            "pending_review": False,
        }

    tally = Tally()
    _caller(0, 3, "t", ["q1", "q2"], reference, ["屏幕"], list, leaky_ask, resolve, None, tally)
    assert tally.errors == 0 and tally.leaks == 2  # the swapped answer and the other reviewer's resolve
    assert len(tally.samples) == 2


@pytest.mark.server  # the HTTP channel: uvicorn on localhost
def test_the_time_bound_stops_callers_between_turns(soak_source: Settings, tmp_path: Path) -> None:
    result = run(soak_source, tmp_path / "load", quick=True, callers=2, per_caller=50, budget_s=0.0)
    assert result.counters == dict.fromkeys(COUNTERS, 0), result.figures
    for channel in ("python", "http"):
        assert result.figures[channel]["turns"] == 0 and result.figures[channel]["callers_stopped_by_time_bound"] == 2
