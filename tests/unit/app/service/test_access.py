"""Access (issue 9, item 5): the review routes need the token, compared in constant time; no configured token means
no review server beyond loopback; every feedback row names who confirmed it; LLM labels only a voter agreed with are
not trained on."""

from __future__ import annotations

import dataclasses
import hmac
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from app.core.errors import ConfigError, InputError, ReviewError
from app.core.feedback import SOURCES, TRAINING_SOURCES, FeedbackStore
from app.service.api import Assistant
from app.service.web import COOKIE, AssistantBackend, create_app
from app.testing import fake_chat
from tests.conftest import ROOT

TOKEN = "access-test-token"


@pytest.fixture()
def client(components):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    return TestClient(create_app(lambda: AssistantBackend(Assistant(components)), TOKEN))


def test_missing_or_wrong_tokens_get_401_with_a_message(client) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, {"Authorization": "Bearer " + TOKEN[:-1]}, {"Authorization": TOKEN}, {"Cookie": f"{COOKIE}="}):
        for method, path in (("GET", "/review/api/pending"), ("POST", "/review/api/resolve")):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 401 and response.json() == {"error": "review token required"}
    page = client.get("/review")
    assert page.status_code == 401 and "needs the review token" in page.text and "pending" not in page.text
    assert client.get("/review/api/pending", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_every_token_check_is_a_constant_time_compare(client, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client.get("/review/api/pending", headers={"Authorization": "Bearer nope-nope"})
    client.get("/review/api/pending", headers={"Cookie": f"{COOKIE}=also-wrong"})
    client.get("/review?token=wrong-again", follow_redirects=False)
    assert client.get("/review/api/pending", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert calls == [
        (b"nope-nope", TOKEN.encode()),
        (b"also-wrong", TOKEN.encode()),
        (b"wrong-again", TOKEN.encode()),
        (TOKEN.encode(), TOKEN.encode()),
    ]


def test_the_token_is_configurable_and_short_ones_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    from app.service.web import serve_token

    configured = settings.model_copy(update={"review_token": SecretStr("a-configured-token")})
    assert serve_token(configured, "10.0.0.7") == "a-configured-token"
    with pytest.raises(ReviewError, match="at least 8"):
        create_app(lambda: None, "short")  # type: ignore[arg-type,return-value]


def test_no_token_refuses_a_review_server_beyond_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import app
    from app.service.web import server_app

    monkeypatch.setenv("LABELGATE_DATA_DIR", str(ROOT / "data"))
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LABELGATE_REVIEW_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.20", "::", "review.example.com"):
        result = CliRunner().invoke(app, ["review", "serve", "--host", host])
        assert result.exit_code == 2, result.output
        assert "set LABELGATE_REVIEW_TOKEN" in result.output and "not a loopback address" in result.output
    # mounted in the LangGraph server: `langgraph dev` says where it serves; no address (a container) counts as open
    for url in ("http://0.0.0.0:2024", "https://abc.trycloudflare.com", None):
        if url is None:
            monkeypatch.delenv("LANGGRAPH_API_URL", raising=False)
        else:
            monkeypatch.setenv("LANGGRAPH_API_URL", url)
        with pytest.raises(ConfigError, match="LABELGATE_REVIEW_TOKEN"):
            server_app()
    for url in ("http://127.0.0.1:2024", "http://localhost:2024", "http://[::1]:2024"):
        monkeypatch.setenv("LANGGRAPH_API_URL", url)
        assert server_app() is not None  # a random per-run token, logged
    monkeypatch.setenv("LANGGRAPH_API_URL", "http://0.0.0.0:2024")
    monkeypatch.setenv("LABELGATE_REVIEW_TOKEN", "a-configured-token")
    assert server_app() is not None


def test_every_feedback_row_names_who_confirmed_it(components) -> None:  # type: ignore[no-untyped-def]

    store = components.feedback
    for source in SOURCES:
        for reviewer in (None, "", "   "):
            with pytest.raises(InputError, match="reviewer identity"):
                store.add(thread_id="t", query="屏幕碎了", labels=["屏幕"], source=source, reviewer=reviewer)
    with pytest.raises(InputError, match="source"):
        store.add(thread_id="t", query="屏幕碎了", labels=["屏幕"], source="llm", reviewer="qwen")  # the LLM alone
    replies = ['{"labels": ["活动优惠"]}', "活动见 [D4]", '{"labels": ["屏幕"]}', "请稍候", "好的"]
    llm = fake_chat(*replies)
    assistant = Assistant(dataclasses.replace(components, llm=llm))
    by_rule = assistant.ask("宣传单上的活动")  # the voters disagree (B: 虚假宣传); LLM 活动优惠, the promo rule agrees
    assert by_rule.label_source == "llm+rules", by_rule
    paused = assistant.ask("修好的进度怎么样了")  # voter B alone knows 维修进度; the LLM says 屏幕: nobody agrees
    assert paused.pending_review
    with pytest.raises(ReviewError, match="reviewer identity"):
        assistant.resume(paused.thread_id, labels=["维修进度"], reviewer=" ")
    assistant.resume(paused.thread_id, labels=["维修进度"], reviewer="erin")
    rows = [(row.source, row.reviewer) for row in store.rows()]
    assert rows == [("llm+rules", "auto:rule:promo+voter:A+voter:B"), ("human", "erin")]


def test_only_human_and_rule_confirmed_feedback_is_trained_on(settings, taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert set(TRAINING_SOURCES) == {"human", "llm+rules"}
    store = FeedbackStore(settings.feedback_db_url)
    store.add(thread_id="t1", query="屏幕碎了", labels=["屏幕"], source="human", reviewer="alice")
    store.add(thread_id="t2", query="双十一优惠", labels=["活动优惠"], source="llm+rules", reviewer="auto:rule:promo")
    store.add(thread_id="t3", query="电池不耐用", labels=["电池"], source="llm+voter", reviewer="auto:voter:A")
    assert [ex.text for ex in store.training_examples(taxonomy)] == ["屏幕碎了", "双十一优惠"]
    assert len(store.rows()) == 3  # kept and listed, just not learned from
    out = settings.home / "export.jsonl"
    assert store.export(out, taxonomy) == 2 and "电池不耐用" not in out.read_text(encoding="utf-8")


def test_the_review_page_shows_queries_as_text_never_as_markup(client, components) -> None:  # type: ignore[no-untyped-def]
    """The page builds its DOM with createElement/append (text nodes) and Object.assign on properties; no sink that
    parses HTML exists in it, only its nonce'd script runs (CSP), and the API hands the query over as JSON data.
    (tests/unit/app/service/test_web_browser.py checks the same in Chromium where it is installed.)"""
    import re

    from app.service.web import page_html

    script = page_html().split("<script>")[1].split("</script>")[0]
    sinks = (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
        "srcdoc",
        "onerror",
    )
    assert not [sink for sink in sinks if sink in script]
    assert "createElement" in script and "textContent" in script
    assert not re.search(r"setAttribute\(\s*['\"]on", script)  # no event-handler attributes from data
    hostile = '<img src=x onerror="window.pwned=1">宣传<script>alert(1)</script>'
    Assistant(components).ask(hostile)  # 投诉 via voter B: a pending review
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = client.get("/review/api/pending", headers=auth)
    assert body.headers["content-type"] == "application/json"
    assert [row["query"] for row in body.json()["pending"]] == [hostile]
    page = client.get("/review", headers=auth)
    csp = page.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "unsafe-inline" not in csp and "default-src 'self'" in csp
    assert hostile not in page.text  # the page itself carries no review data: it fetches it as JSON


def test_invalid_requests_get_4xx_with_a_message(client) -> None:  # type: ignore[no-untyped-def]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        (client.get("/review/api/resolve", headers=auth), 405),
        (client.post("/review/api/resolve", headers=auth, content=b"x", params={}), 415),
        (client.post("/review/api/resolve", headers={**auth, "Content-Type": "application/json"}, content=b"[1"), 400),
        (client.post("/review/api/resolve", headers=auth, json={"thread_id": " "}), 400),
        (client.post("/review/api/resolve", headers=auth, json={"thread_id": "t", "labels": ["ADMIN"]}), 400),
        (
            client.post(
                "/review/api/resolve", headers=auth, json={"thread_id": "t", "labels": "屏幕", "reviewer": "a"}
            ),
            400,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status and response.text.strip()
        if status != 405:
            assert response.json()["error"]
