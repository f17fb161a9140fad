"""The review web app over the real graph (voter doubles, no LLM): token on every route, list, resolve, bad input."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.core.errors import ReviewError
from app.service.api import Assistant
from app.service.web import COOKIE, AssistantBackend, create_app

TOKEN = "s3cret-review-token"


@pytest.fixture()
def assistant(components):  # type: ignore[no-untyped-def]
    return Assistant(components)


@pytest.fixture()
def client(assistant):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    return TestClient(create_app(lambda: AssistantBackend(assistant), TOKEN))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_route_needs_the_token(client) -> None:  # type: ignore[no-untyped-def]
    for method, path in (("GET", "/review"), ("GET", "/review/api/pending"), ("POST", "/review/api/resolve")):
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Cookie": f"{COOKIE}=nope"}):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
    assert client.get("/review?token=wrong").status_code == 401
    with pytest.raises(ReviewError):
        create_app(lambda: None, "short")  # type: ignore[arg-type,return-value]


def test_token_in_the_url_sets_a_cookie_and_drops_the_token(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/review?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/review"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/review")  # the client keeps the cookie
    assert page.status_code == 200 and "pending reviews" in page.text
    csp = page.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text and "unsafe-inline" not in csp
    assert client.get("/review/api/pending").status_code == 200


def test_list_and_resolve(client, assistant, components) -> None:  # type: ignore[no-untyped-def]
    asked = assistant.ask("修好的进度怎么样了")
    body = client.get("/review/api/pending", headers=AUTH).json()
    [row] = body["pending"]
    assert row["thread_id"] == asked.thread_id and row["query"] == "修好的进度怎么样了"
    by_label = {c["label"]: c for c in row["candidates"]}
    assert any(s.startswith("B:") and s.endswith("✓") for s in by_label["维修进度"]["sources"])
    assert {label["id"] for label in body["labels"]} == set(components.taxonomy.ids)

    payload = {"thread_id": asked.thread_id, "labels": ["维修进度"], "reviewer": "carol"}
    done = client.post("/review/api/resolve", headers=AUTH, json=payload).json()["resolved"]
    assert done["labels"] == ["售后", "维修进度"] and done["label_source"] == "human" and not done["pending_review"]
    assert client.get("/review/api/pending", headers=AUTH).json()["pending"] == []
    [feedback] = components.feedback.rows()
    assert (feedback.reviewer, feedback.labels, feedback.source) == ("carol", ["售后", "维修进度"], "human")
    again = client.post("/review/api/resolve", headers=AUTH, json=payload)
    assert again.status_code == 409 and "no pending review" in again.json()["error"]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"thread_id": "t", "labels": ["不存在"], "reviewer": "a"}, 400, "unknown labels"),
        ({"thread_id": "t", "labels": ["屏幕"], "reviewer": " "}, 400, "reviewer"),
        ({"thread_id": "t", "labels": [], "reviewer": "a"}, 400, "non-empty list"),
        ({"labels": ["屏幕"], "reviewer": "a"}, 400, "thread_id"),
        ({"thread_id": "no-such-thread", "labels": ["屏幕"], "reviewer": "a"}, 409, "no pending review"),
        (["not", "an", "object"], 400, "send a JSON object"),
    ],
)
def test_bad_resolve_requests_are_refused_with_a_reason(client, payload, status, message) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/review/api/resolve", headers=AUTH, json=payload)
    assert response.status_code == status and message in response.json()["error"]


def test_non_json_and_oversized_bodies_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/review/api/resolve", headers=AUTH, content=b"labels=x").status_code == 415
    bad = client.post("/review/api/resolve", headers={**AUTH, "Content-Type": "application/json"}, content=b"{oops")
    assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]
    big = client.post(
        "/review/api/resolve", headers={**AUTH, "Content-Type": "application/json"}, content=b" " * 70_000
    )
    assert big.status_code == 413


def test_serving_beyond_loopback_needs_a_configured_token(settings) -> None:  # type: ignore[no-untyped-def]
    from app.core.errors import ConfigError
    from app.service.web import serve_token

    assert len(serve_token(settings, "127.0.0.1")) >= 16 and serve_token(settings, "localhost")
    assert serve_token(settings, "::1") != serve_token(settings, "::1")  # random per run
    for host in ("0.0.0.0", "192.168.1.20", "review.example"):
        with pytest.raises(ConfigError, match="LABELGATE_REVIEW_TOKEN"):
            serve_token(settings, host)
    configured = settings.model_copy(update={"review_token": SecretStr("configured-token")})
    assert serve_token(configured, "0.0.0.0") == "configured-token"


class FakeServerClient:
    """The slice of the LangGraph SDK client ServerBackend uses, over an in-memory thread table."""

    def __init__(self, threads: dict[str, dict]) -> None:  # type: ignore[type-arg]
        self.table = threads
        self.threads, self.runs = self, self
        self.resumed: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]

    async def search(self, **kwargs):  # type: ignore[no-untyped-def]
        return [t for t in self.table.values() if t["status"] == kwargs["status"]]

    async def get(self, thread_id: str):  # type: ignore[no-untyped-def]
        if thread_id not in self.table:
            raise RuntimeError("404")
        return self.table[thread_id]

    async def wait(self, thread_id: str, graph_id: str, command: dict):  # type: ignore[no-untyped-def,type-arg]
        self.resumed.append((thread_id, graph_id, command))
        self.table[thread_id]["status"] = "idle"
        return {"labels": ["售后", "屏幕"], "label_source": "human", "decision": "escalate", "answer": "ok"}


def test_server_backend_lists_and_resumes_server_threads(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from app.service.web import ServerBackend

    payload = {"query": "屏幕花了", "candidates": [{"label": "屏幕", "sources": ["llm"], "score": 0.4}], "reasons": []}
    fake = FakeServerClient(
        {
            "t1": {"thread_id": "t1", "status": "interrupted", "interrupts": {"task": [{"value": payload}]}},
            "t2": {"thread_id": "t2", "status": "idle", "interrupts": {}},
        }
    )
    client = TestClient(create_app(lambda: ServerBackend(taxonomy, client=fake), TOKEN))
    [row] = client.get("/review/api/pending", headers=AUTH).json()["pending"]
    assert row["thread_id"] == "t1" and row["query"] == "屏幕花了"
    for thread_id, message in (("t2", "no pending review"), ("nope", "not found")):
        body = {"thread_id": thread_id, "labels": ["屏幕"], "reviewer": "a"}
        refused = client.post("/review/api/resolve", headers=AUTH, json=body)
        assert refused.status_code == 409 and message in refused.json()["error"]
    done = client.post(
        "/review/api/resolve", headers=AUTH, json={"thread_id": "t1", "labels": ["屏幕"], "reviewer": "a"}
    )
    assert done.json()["resolved"]["labels"] == ["售后", "屏幕"] and not done.json()["resolved"]["pending_review"]
    assert fake.resumed == [("t1", "labelgate", {"resume": {"labels": ["售后", "屏幕"], "reviewer": "a"}})]


def test_store_failures_are_503_with_their_message_other_typed_errors_400() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from app.core.errors import (
        CheckpointerError,
        FeedbackStoreError,
        InputError,
        KnowledgeBaseError,
        NotPendingError,
    )
    from app.service.web import errors_as_json

    raised = {
        "/full": FeedbackStoreError("feedback store is full: free space, then retry"),
        "/locked": CheckpointerError("database is locked: retry"),
        "/kb": KnowledgeBaseError("cannot reach Chroma at http://127.0.0.1:1: start it (chroma run …)"),
        "/bad": InputError("labels ['ADMIN'] are not in the taxonomy"),
        "/done": NotPendingError("thread t has no pending review"),
    }

    async def fail(request):  # type: ignore[no-untyped-def]
        raise raised[request.url.path]

    client = TestClient(Starlette(routes=[Route(path, errors_as_json(fail)) for path in raised]))
    got = {path: client.get(path) for path in raised}
    expected = {"/full": 503, "/locked": 503, "/kb": 503, "/bad": 400, "/done": 409}
    assert {path: r.status_code for path, r in got.items()} == expected
    assert got["/full"].json()["error"].startswith("feedback store is full") and got["/full"].headers["retry-after"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b'{"a": [1, "\xe5\xb1\x8f"]}', "application/json", 200, None),
        (b'{"a": 1}', "application/json; charset=utf-8", 200, None),
        (b"[1, 2]", "application/json", 400, "send a JSON object"),
        (b'"text"', "application/json", 400, "send a JSON object"),
        (b"null", "application/json", 400, "send a JSON object"),
        (b"{oops", "application/json", 400, "invalid JSON"),
        (b'{"a": 1}', "text/plain", 415, "send JSON"),
        (b'{"a": "' + b"x" * 200 + b'"}', "application/json", 413, "over 100 bytes"),
    ],
)
def test_read_json_object_passes_an_object_and_says_what_is_wrong_with_anything_else(
    content: bytes, content_type: str, status: int, error: str | None
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from app.service.web import read_json_object

    async def echo(request):  # type: ignore[no-untyped-def]
        data = await read_json_object(request, max_body=100)
        return data if isinstance(data, Response) else JSONResponse({"got": data})

    client = TestClient(Starlette(routes=[Route("/", echo, methods=["POST"])]))
    response = client.post("/", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    if error is None:
        import json

        assert response.json() == {"got": json.loads(content)}
    else:
        assert error in response.json()["error"]
