"""The HTTP chat API over the real graph (voter doubles, no LLM): ask, reviews behind the token, 4xx with a message."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.core.errors import ReviewError
from app.service.api import Assistant
from app.service.server import create_server, running
from app.service.web import COOKIE

TOKEN = "s3cret-chat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAUSES = "修好的进度怎么样了"  # voter B alone accepts 维修进度: the voters disagree → review
AUTO = "我的手机屏幕碎了，保修吗"


@pytest.fixture()
def assistant(components):  # type: ignore[no-untyped-def]
    with Assistant(components) as built:
        yield built


@pytest.fixture()
def client(assistant):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    return TestClient(create_server(assistant, TOKEN))


def test_ask_list_resolve_health(client, assistant) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json() == {"ok": True}
    answered = client.post("/v1/ask", json={"query": AUTO, "thread_id": "t-auto", "user": "u1"}).json()
    assert answered["thread_id"] == "t-auto" and answered["query"] == AUTO and not answered["pending_review"]
    assert answered["answer"] and "屏幕" in answered["labels"]
    paused = client.post("/v1/ask", json={"query": PAUSES}).json()
    assert paused["pending_review"] and paused["path"][-1] == "review"
    [row] = client.get("/v1/reviews", headers=AUTH).json()["pending"]
    assert row["thread_id"] == paused["thread_id"] and row["query"] == PAUSES and row["candidates"]
    url = f"/v1/reviews/{paused['thread_id']}/resolve"
    done = client.post(url, json={"labels": ["维修进度"], "reviewer": "alice"}, headers=AUTH).json()
    assert done["label_source"] == "human" and "维修进度" in done["labels"] and done["review"]["reviewer"] == "alice"
    assert client.get("/v1/reviews", headers=AUTH).json()["pending"] == []
    [feedback] = assistant.components.feedback.rows(sources=["human"])
    assert (feedback.thread_id, feedback.reviewer) == (paused["thread_id"], "alice")


def test_review_routes_need_the_token(client) -> None:  # type: ignore[no-untyped-def]
    for method, path in (("GET", "/v1/reviews"), ("POST", "/v1/reviews/t1/resolve")):
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Cookie": f"{COOKIE}=nope"}):
            response = client.request(method, path, headers=headers, json={"labels": ["屏幕"], "reviewer": "a"})
            assert response.status_code == 401 and response.json()["error"] == "review token required"
    with pytest.raises(ReviewError):
        create_server(None, "short")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query": ""}, 400, "empty"),
        ({"query": "   "}, 400, "empty"),
        ({}, 400, "'query'"),
        ({"query": 5}, 400, "'query'"),
        ([1, 2], 400, "JSON object"),
        ({"query": "屏幕裂了", "thread_id": ""}, 400, "'thread_id'"),
        ({"query": "屏幕裂了", "thread_id": "x" * 201}, 400, "'thread_id'"),
        ({"query": "屏幕裂了", "user": 3}, 400, "'user'"),
    ],
)
def test_bad_ask_is_a_4xx_with_a_message(client, body, status, message) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/ask", json=body)
    assert response.status_code == status and message in response.json()["error"], response.text


def test_bad_bodies_and_resolves(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/ask", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "invalid JSON" in response.json()["error"]
    response = client.post("/v1/ask", content=b"query=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and "JSON" in response.json()["error"]
    response = client.post("/v1/ask", json={"query": "x" * 70_000})
    assert response.status_code == 413
    unknown = client.post(
        "/v1/reviews/no-such-thread/resolve", json={"labels": ["屏幕"], "reviewer": "a"}, headers=AUTH
    )
    assert unknown.status_code == 409 and "no pending review" in unknown.json()["error"]
    paused = client.post("/v1/ask", json={"query": PAUSES, "thread_id": "t-p"}).json()
    again = client.post("/v1/ask", json={"query": PAUSES, "thread_id": "t-p"})
    assert again.status_code == 400 and "waiting for a review" in again.json()["error"]
    url = f"/v1/reviews/{paused['thread_id']}/resolve"
    for body, message in (
        ({"labels": ["ADMIN"], "reviewer": "a"}, "unknown labels"),
        ({"labels": [], "reviewer": "a"}, "'labels'"),
        ({"labels": ["屏幕"]}, "reviewer"),
    ):
        response = client.post(url, json=body, headers=AUTH)
        assert response.status_code == 400 and message in response.json()["error"], response.text
    assert client.get("/v1/reviews", headers=AUTH).json()["pending"][0]["thread_id"] == "t-p"  # still waiting


@pytest.mark.server  # uvicorn on a free localhost port
def test_concurrent_http_callers_get_their_own_threads(assistant) -> None:  # type: ignore[no-untyped-def]
    import httpx

    queries = [AUTO, PAUSES, "电池不耐用怎么办", "有什么优惠活动"]

    def caller(c: int) -> list[tuple[str, str, str, str]]:
        seen = []
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(3):
                query, tid = queries[(c + i) % len(queries)], f"c{c}-{i}"
                out = http.post("/v1/ask", json={"query": query, "thread_id": tid}).json()
                seen.append((tid, query, out["thread_id"], out["query"]))
        return seen

    with running(create_server(assistant, TOKEN)) as url, ThreadPoolExecutor(6) as pool:
        results = [row for rows in pool.map(caller, range(6)) for row in rows]
    assert len(results) == 18 and all(tid == got_tid and q == got_q for tid, q, got_tid, got_q in results)


def test_serve_refuses_a_non_loopback_address_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    monkeypatch.delenv("LABELGATE_REVIEW_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8099"])
    assert result.exit_code == 2 and "LABELGATE_REVIEW_TOKEN" in result.output


def test_ask_takes_per_run_options(client) -> None:  # type: ignore[no-untyped-def]
    one = client.post("/v1/ask", json={"query": AUTO, "options": {"top_k": 1}}).json()
    every = client.post("/v1/ask", json={"query": AUTO}).json()
    assert "option:top_k=1" in one["reasons"] and not any(r.startswith("option:") for r in every["reasons"])
    assert one["answer"].count("\n[") == 1 < every["answer"].count("\n[")  # no LLM: the answer lists the passages
    response = client.post("/v1/ask", json={"query": AUTO, "options": {"top_k": 0}})
    assert response.status_code == 400 and "top_k" in response.json()["error"]
    response = client.post("/v1/ask", json={"query": AUTO, "options": ["top_k", 1]})
    assert response.status_code == 400 and "run options" in response.json()["error"]
