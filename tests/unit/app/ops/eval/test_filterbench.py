"""`labelgate bench filter`: filtered Chroma search against exact search over the filtered subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.ops.eval import filterbench as fb


def test_subsets_have_their_share_and_exact_top_is_the_brute_force_top() -> None:
    members = fb.subsets(1000, [0.01, 0.1])
    assert {k: len(v) for k, v in members.items()} == {"s0.01": 10, "s0.1": 100}
    vectors = fb.random_vectors(200, dim=8)
    rows = np.arange(0, 200, 2)
    q = vectors[4]
    assert 4 in fb.exact_top(vectors, rows, q, 3) and len(fb.exact_top(vectors, rows, q, 3)) == 3
    with pytest.raises(ValueError):
        fb.subsets(10, [0.0])


def test_filter_recall_reports_every_method_per_selectivity() -> None:
    result = fb.filter_recall(fb.random_vectors(1500, dim=16), fb.random_vectors(5, dim=16, seed=1), [0.02, 0.2], k=5)
    assert set(result["by_selectivity"]) == {"s0.02", "s0.2"}
    for row in result["by_selectivity"].values():
        assert set(row) == {"rows", "where", "partition", "partition_ef", "exact_numpy"}
        assert row["exact_numpy"]["recall_at_k"] == 1.0
        assert all(0.0 <= row[m]["recall_at_k"] <= 1.0 and row[m]["p50_ms"] > 0 for m in row if m != "rows")


def test_cli_validates_and_writes_json(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    out = tmp_path / "filter.json"
    result = CliRunner().invoke(app, ["bench", "filter", "--chunks", "300", "--queries", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["by_selectivity"]["s0.1"]["rows"] == 30
    bad = CliRunner().invoke(app, ["bench", "filter", "--selectivity", "0.1,x"])
    assert bad.exit_code == 2 and "--selectivity" in bad.output
    missing = CliRunner().invoke(app, ["bench", "filter", "--vectors", "real", "--chunks", "300"])
    assert missing.exit_code == 2 and "labelgate bench --chunks 300" in missing.output
