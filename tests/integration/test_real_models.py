"""Slow tests with the real models: they need `make train index` first (make test-slow does it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_settings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assistant():  # type: ignore[no-untyped-def]
    from app.api import Assistant

    settings = load_settings(home=ROOT / ".labelgate", data_dir=ROOT / "data")
    if not (settings.voters_dir / "A" / "CURRENT").is_file():
        pytest.skip("voters not trained: run `make train index` first")
    return Assistant.from_settings(settings)


def test_seed_query_is_gated_to_after_sales(assistant) -> None:  # type: ignore[no-untyped-def]
    answer = assistant.ask("我的手机屏幕裂了，保修可以换吗？")
    assert "售后" in answer.labels and "销售" not in answer.labels
    taxonomy = assistant.components.taxonomy
    for doc in answer.docs:
        assert "售后" in taxonomy.expand(doc["labels"]), doc


def test_demo_json_has_the_drift_fields() -> None:
    if not (ROOT / ".labelgate" / "voters" / "A" / "CURRENT").is_file():
        pytest.skip("voters not trained: run `make train index` first")
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout)
    assert sorted(result["gated_top3_after"]) == ["D1", "D2", "D3"]
    assert len(result["dense_top3_full"]) == 3 and len(result["gated_top3_full"]) == 3
    assert 0.0 <= result["dense_purity_full"] <= 1.0
    assert result["gated_purity_full"] >= result["dense_purity_full"]
    assert len(result["samples"]) >= 6
