"""`langgraph dev` serves the graph (langgraph.json) offline: a small input schema, named nodes, the review pause
visible and resumable through the SDK; the review page (http.app) is mounted over the same threads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server]
ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("LABELGATE_HOME") or ROOT / ".labelgate")  # trained voters (make train index)
TOKEN = "server-test-token"
NODES = {"classify", "vote", "extract", "rules", "review", "retrieve", "rerank", "answer"}


@pytest.fixture(scope="module")
def decisions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("log") / "decisions.sqlite"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, decisions: Path) -> Iterator[str]:
    if not (HOME / "voters" / "A" / "CURRENT").is_file():
        pytest.skip("voters not trained: run `make train index` first")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "LABELGATE_REVIEW_TOKEN": TOKEN,
        "LABELGATE_VOTE__MIN_MARGIN": "1.0",  # unreachable: every query escalates
        "LABELGATE_LLM_LOCAL": "false",  # no LLM → the review pause is certain
        "LABELGATE_LLM_BASE_URL": "",
        "LABELGATE_FEEDBACK_URL": f"sqlite:///{tmp_path_factory.mktemp('fb') / 'feedback.sqlite'}",
        "LABELGATE_DECISION_LOG_URL": f"sqlite:///{decisions}",
    }
    log = tmp_path_factory.mktemp("lgdev") / "server.log"
    cmd = [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-browser", "--no-reload", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("langgraph dev did not start:\n" + log.read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_review_routes_resolve_a_server_thread(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    thread = client.threads.create()
    state = client.runs.wait(thread["thread_id"], "labelgate", input={"query": "屏幕碎了还在保修期吗"})
    assert "__interrupt__" in state and client.threads.get(thread["thread_id"])["status"] == "interrupted"

    assert httpx.get(f"{server}/review/api/pending").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pending = httpx.get(f"{server}/review/api/pending", headers=auth).json()["pending"]
    row = next(p for p in pending if p["thread_id"] == thread["thread_id"])
    assert row["query"] == "屏幕碎了还在保修期吗" and row["candidates"]

    body = {"thread_id": thread["thread_id"], "labels": ["屏幕", "保修政策"], "reviewer": "server-test"}
    done = httpx.post(f"{server}/review/api/resolve", headers=auth, json=body, timeout=120).json()["resolved"]
    assert set(done["labels"]) == {"售后", "屏幕", "保修政策"}
    assert done["label_source"] == "human" and not done["pending_review"]
    assert client.threads.get(thread["thread_id"])["status"] == "idle"


def test_server_runs_land_in_the_decision_log(server: str, decisions: Path) -> None:
    """Runs in the LangGraph server (its own checkpointer, astream) are logged by the recorder bound in build_graph."""
    from langgraph_sdk import get_sync_client

    from app.core.decisionlog import DecisionLog

    client = get_sync_client(url=server, api_key=None)
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "labelgate", input={"query": "电池不耐用"})
    command = {"resume": {"labels": ["电池"], "reviewer": "server-test"}}
    client.runs.wait(thread, "labelgate", command=command)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10  # the server's writer thread commits in the background
    while True:
        store = DecisionLog(f"sqlite:///{decisions}", create=False)
        rows = [r for r in store.rows(since=0, until=time.time() + 1) if r.thread_id == thread]
        store.close()
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r.kind, r.pending_review) for r in rows] == [("ask", True), ("resume", False)]
    assert rows[0].decision == "escalate" and rows[1].reviewer == "server-test" and rows[1].label_source == "human"
    assert rows[0].model_versions.keys() >= {"A", "B"} and rows[0].latency_ms > 0


def test_studio_sees_a_small_input_schema_and_named_nodes(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    [assistant] = client.assistants.search(graph_id="labelgate")
    schema = client.assistants.get_schemas(assistant["assistant_id"])["input_schema"]
    assert set(schema["properties"]) == {"query", "user"} and schema["required"] == ["query"]
    graph = client.assistants.get_graph(assistant["assistant_id"])
    assert {node["id"] for node in graph["nodes"]} == NODES | {"__start__", "__end__"}


def test_a_thread_pauses_and_resumes_through_the_sdk(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    thread_id = client.threads.create()["thread_id"]
    updates = [
        part.data
        for part in client.runs.stream(
            thread_id, "labelgate", input={"query": "屏幕碎了还在保修期吗"}, stream_mode="updates"
        )
        if part.event == "updates"
    ]
    nodes = [name for update in updates for name in update]
    assert nodes[:4] == ["classify", "vote", "extract", "rules"] and nodes[-1] == "__interrupt__"

    thread = client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [payload] = [item["value"] for items in thread["interrupts"].values() for item in items]
    assert payload["query"] == "屏幕碎了还在保修期吗" and payload["candidates"] and "error" not in payload
    assert payload["resume_with"] == {"labels": ["<label id>", "..."], "reviewer": "<your name>"}

    bad = client.runs.wait(thread_id, "labelgate", command={"resume": {"labels": ["不存在"], "reviewer": "sdk"}})
    assert "__interrupt__" in bad and client.threads.get(thread_id)["status"] == "interrupted"
    [again] = [item["value"] for items in client.threads.get(thread_id)["interrupts"].values() for item in items]
    assert "unknown labels" in again["error"]  # the graph's own validation: it pauses again with the error

    done = client.runs.wait(
        thread_id, "labelgate", command={"resume": {"labels": ["屏幕", "保修政策"], "reviewer": "sdk"}}
    )
    assert "__interrupt__" not in done and client.threads.get(thread_id)["status"] == "idle"
    assert set(done["labels"]) == {"售后", "屏幕", "保修政策"} and done["label_source"] == "human"
    assert done["review"]["reviewer"] == "sdk" and done["answer"]


def test_per_run_options_through_the_sdk(server: str) -> None:
    """The graph's context_schema (graph/options.py) is what Studio shows as the run's options, and a run's `context`
    changes that run only: here the review mode and top_k, under the server's settings (every query escalates, no
    LLM: by the taxonomy, 售后 is answered now under the coarse filter and reviewed after)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    [assistant] = client.assistants.search(graph_id="labelgate")
    context = client.assistants.get_schemas(assistant["assistant_id"])["context_schema"]
    assert {"top_k", "min_margin", "rerank_label", "review_mode", "llm"} <= set(context["properties"])

    query = {"query": "屏幕碎了还在保修期吗"}
    plain = client.runs.wait(client.threads.create()["thread_id"], "labelgate", input=query)
    assert plain["route"] == "provisional" and plain["answer"] and len(plain["docs"]) == 3
    assert not any(reason.startswith("option:") for reason in plain["reasons"])

    thread = client.threads.create()["thread_id"]
    first = {"review_mode": "before_answer"}
    held = client.runs.wait(thread, "labelgate", input=query, context=first)  # type: ignore[arg-type]
    assert (
        held["route"] == "review" and not held.get("answer") and "option:review_mode=before_answer" in held["reasons"]
    )
    assert client.threads.get(thread)["status"] == "interrupted"

    short = client.runs.wait(client.threads.create()["thread_id"], "labelgate", input=query, context={"top_k": 1})  # type: ignore[arg-type]
    assert short["route"] == "provisional" and len(short["docs"]) == 1 and "option:top_k=1" in short["reasons"]
