"""`labelgate bench trace`: paired traced/untraced turns, and each mode's environment."""

from __future__ import annotations

import json

import langsmith
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langsmith.run_helpers import tracing_context

from app.core.errors import ConfigError
from app.ops.eval.tracebench import WARMUP, bench_trace, measure_turns, mode_env
from app.service.api import Assistant
from app.testing import FakeLangSmith
from tests.unit.app.cli.test_cli import env as env  # the tiny trained-voters workspace of the CLI tests
from tests.unit.app.cli.test_cli import run

QUERIES = ["我的手机屏幕裂了，保修可以换吗？", "以旧换新有什么活动", "修好的进度怎么样了", "电池续航不行"] * 2


def test_paired_turns_trace_only_the_traced_half(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components, checkpointer=InMemorySaver())
    with FakeLangSmith() as fake:
        client = langsmith.Client(api_url=fake.url, api_key="unit")
        with tracing_context(enabled=True, client=client):
            result = measure_turns(assistant, QUERIES, paired=True)
        client.flush()
        roots = [run for run in fake.runs() if run.get("parent_run_id") is None]
    assert result["turns"] == len(QUERIES) and result["p50_ms"] > 0 and result["untraced"]["p50_ms"] > 0
    assert isinstance(result["paired_overhead_p50_ms"], float)
    assert len(roots) == WARMUP + len(QUERIES)  # warm-up and traced turns; none of the untraced ones
    plain = measure_turns(assistant, QUERIES[:2], paired=False)
    assert plain["turns"] == 2 and "untraced" not in plain


def test_each_mode_gets_only_its_own_tracing_variables() -> None:
    base = {"PATH": "/bin", "LANGSMITH_API_KEY": "real-key", "LANGCHAIN_TRACING_V2": "true"}
    assert mode_env("off", base) == {"PATH": "/bin", "LANGSMITH_TRACING": "false"}
    fake = mode_env("fake", base, fake_url="http://127.0.0.1:1234")
    assert fake["LANGSMITH_ENDPOINT"] == "http://127.0.0.1:1234" and fake["LANGSMITH_API_KEY"] != "real-key"
    assert "LANGCHAIN_TRACING_V2" not in fake
    unreachable = mode_env("unreachable", base)["LANGSMITH_ENDPOINT"]
    assert unreachable.startswith("http://127.0.0.1:")
    assert "LANGSMITH_ENDPOINT" not in mode_env("hosted", base)  # langsmith's own default
    with pytest.raises(ConfigError):
        mode_env("sometimes", base)
    with pytest.raises(ConfigError):
        bench_trace(None, QUERIES, modes=["off", "sometimes"])  # type: ignore[arg-type]


def test_bench_trace_end_to_end_on_tiny_voters(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run("train")[0] == 0 and run("index")[0] == 0
    out = tmp_path / "trace.json"
    code, text = run(
        "bench",
        "trace",
        "--queries",
        "10",
        "--rounds",
        "1",
        "--modes",
        "off,unreachable-no-pause,fake",
        "--out",
        str(out),
    )
    assert code == 0, text
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["modes"]) == {"off", "unreachable-no-pause", "fake"} and report["queries"] == 10
    [failing] = report["modes"]["unreachable-no-pause"]["rounds"]
    assert failing["langsmith_warnings"] > 0 and failing["exit_s"] < 5  # it tried, gave up, and let the process go
    assert report["modes"]["fake"]["runs_received"][0] >= (WARMUP + 10) * 6  # root + ≥ 5 nodes a traced turn
    assert set(report["overhead_p50_ms"]) == {"unreachable-no-pause", "fake"}
    code, text = run("bench", "trace", "--modes", "off,sometimes")
    assert code == 2 and "unknown modes ['sometimes']" in text
