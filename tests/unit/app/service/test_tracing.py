"""LangSmith through the standard variables: the payload carries node names, metadata and route tags; offline it
neither blocks a turn nor stalls process exit, and after a failed send turns go untraced for a while."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langsmith.run_helpers import tracing_context
from langsmith.utils import get_env_var, get_tracer_project

from app.core.tracing import LangSmithTracing
from app.service.api import Assistant
from app.testing import FakeLangSmith

ROOT = Path(__file__).resolve().parents[4]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def langsmith_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLangSmith]:
    """LANGSMITH_* pointing at a local fake; langsmith caches env lookups, so the cache is cleared around the test."""
    with FakeLangSmith() as fake:
        for name, value in {
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_ENDPOINT": fake.url,
            "LANGSMITH_API_KEY": "unit-test",
            "LANGSMITH_PROJECT": "labelgate-unit",
        }.items():
            monkeypatch.setenv(name, value)
        get_env_var.cache_clear()
        get_tracer_project.cache_clear()
        try:
            yield fake
        finally:
            monkeypatch.undo()
            get_env_var.cache_clear()
            get_tracer_project.cache_clear()


def test_off_by_default() -> None:
    tracing = LangSmithTracing(30)  # conftest sets LANGSMITH_TRACING=false, as the Makefile does
    assert tracing.client is None and tracing.turn()[0] == []
    tracing.flush(1)  # nothing to wait for


def test_the_payload_carries_names_metadata_and_tags(components, langsmith_env: FakeLangSmith) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    answer = assistant.ask("我的手机屏幕裂了，保修可以换吗？", thread_id="chat-1", user="u-7")
    assert answer.decision == "auto"
    assistant.tracing.flush(timeout=10)
    runs = langsmith_env.runs()
    [root] = [run for run in runs if run.get("parent_run_id") is None]
    assert root["name"] == "labelgate" and root["session_name"] == "labelgate-unit"
    assert {"turn:ask", "route:auto"} <= set(root["tags"])
    assert root["extra"]["metadata"]["thread_id"] == "chat-1" and root["extra"]["metadata"]["user"] == "u-7"
    nodes = {run["name"]: run for run in runs if run["name"] in answer.path}
    assert list(nodes) == ["classify", "vote", "retrieve", "rerank", "answer"]
    assert nodes["classify"]["extra"]["metadata"]["model_versions"] == {"A": "test-1", "B": "test-1"}
    assert nodes["vote"]["extra"]["metadata"]["decision"] == "auto" and "route:auto" in nodes["vote"]["tags"]
    assert nodes["retrieve"]["extra"]["metadata"]["filter_used"]["stage"] == "fine"
    assert nodes["answer"]["extra"]["metadata"]["citations"] == answer.citations

    sent = len(runs)
    with tracing_context(enabled=False):  # the documented switch still wins over the variables
        assistant.ask("以旧换新有什么活动", thread_id="chat-2")
    assistant.tracing.flush(timeout=10)
    assert len(langsmith_env.runs()) == sent


def test_a_callers_own_client_is_respected(components, langsmith_env: FakeLangSmith) -> None:  # type: ignore[no-untyped-def]
    import langsmith

    ours = LangSmithTracing(30)
    assert ours.client is not None and len(ours.turn()[0]) == 1
    with FakeLangSmith() as theirs:
        their_client = langsmith.Client(api_url=theirs.url, api_key="theirs")
        with tracing_context(client=their_client):
            assert ours.turn()[0] == []  # langchain_core's own tracer follows the caller's context
            Assistant(components).ask("我的手机屏幕裂了，保修可以换吗？", thread_id="chat-3")
        their_client.flush()
        assert {"labelgate", "classify", "answer"} <= {run["name"] for run in theirs.runs()}
    assert langsmith_env.runs() == []


EXIT_SCRIPT = """
import time
from typing_extensions import TypedDict
from langgraph.graph import END, START, StateGraph
from app.core.tracing import LangSmithTracing
from graph.tracing import traced

class S(TypedDict, total=False):
    query: str
    n: int

g = StateGraph(S)
g.add_node("one", traced(lambda state: {"n": 1}))
g.add_node("two", traced(lambda state: {"n": 2}))
g.add_edge(START, "one"); g.add_edge("one", "two"); g.add_edge("two", END)
graph = g.compile()
tracing = LangSmithTracing(0)  # no pause: every turn is traced and fails
assert tracing.client is not None
start = time.perf_counter()
for _ in range(30):
    graph.invoke({"query": "x"}, {"callbacks": tracing.turn()[0]})
print("done", round((time.perf_counter() - start) * 1000 / 30, 2), flush=True)
"""


def test_unreachable_langsmith_neither_blocks_turns_nor_stalls_exit(tmp_path: Path) -> None:
    env = os.environ | {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "LANGSMITH_API_KEY": "unit-test",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_SCRIPT], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    done_at = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    exit_s = time.monotonic() - done_at
    assert line.startswith("done"), stderr.decode()[-2000:]
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"Failed to" in stderr  # it did try, and gave up
    assert exit_s < 3.0, f"exit took {exit_s:.1f} s (langsmith's default client: 10-40 s)"


def test_a_failed_send_pauses_tracing_for_a_while(components, langsmith_env: FakeLangSmith) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from langsmith.utils import tracing_is_enabled

    traced_inside: list[bool] = []  # what the nodes see: langchain_core adds its own tracer wherever this is True
    voter_a, voter_b = components.voters

    def spying(texts):  # type: ignore[no-untyped-def]
        traced_inside.append(bool(tracing_is_enabled()))
        return voter_a.logits_fn(texts)

    spied = dataclasses.replace(components, voters=[dataclasses.replace(voter_a, logits_fn=spying), voter_b])
    now = [1000.0]
    assistant = Assistant(spied)
    assistant.tracing = LangSmithTracing(30, clock=lambda: now[0])

    def turn(query: str) -> None:
        assistant.ask(query)
        assistant.tracing.flush(10)

    langsmith_env.failing = True
    turn("我的手机屏幕裂了，保修可以换吗？")
    assert assistant.tracing.paused and traced_inside == [True]  # the batch failed: the next turns go untraced,
    langsmith_env.failing = False
    turn("以旧换新有什么活动")
    assert langsmith_env.runs() == [] and traced_inside[-1] is False  # by langchain_core's env tracer too
    assert tracing_is_enabled()  # the caller's own context is untouched
    now[0] += 31  # the pause is over: the next turn is traced again, and it gets through
    assert not assistant.tracing.paused
    turn("电池续航不行")
    assert traced_inside[-1] is True
    assert {run["name"] for run in langsmith_env.runs()} >= {"labelgate", "classify", "vote", "answer"}
    assert not assistant.tracing.paused
