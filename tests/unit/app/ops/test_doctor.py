"""`labelgate doctor` on temporary settings: what is missing fails with the command that builds it, a ready install
passes, and every network probe (LLM, Chroma server, Postgres, LangSmith) answers within its timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.config import Settings
from app.ops.doctor import Check, format_checks, report, run_doctor
from app.ops.testservers import free_port


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


@pytest.fixture()
def fake_http() -> Iterator[tuple[str, dict[str, int]]]:
    """A local HTTP server answering every GET with the status in `codes[path]` (200 when unset)."""
    codes: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = codes.get(self.path, 200)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", codes
    server.shutdown()
    server.server_close()


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_a_fresh_install_fails_with_the_commands_that_fix_it(settings: Settings) -> None:
    checks = by_name(run_doctor(settings.model_copy(update={"llm_local": True})))
    assert checks["models:e5"].status == "fail" and checks["models:e5"].fix == "labelgate models build"
    assert checks["models:int8"].status == "fail" and checks["models:int8"].fix == "labelgate models build"
    assert checks["models:voters"].status == "fail" and checks["models:voters"].fix == "labelgate train"
    assert checks["models:gguf"].status == "fail" and checks["models:gguf"].fix == "labelgate models build"
    assert checks["chroma"].status == "fail" and checks["chroma"].fix == "labelgate index"
    assert checks["checkpointer"].status == "ok" and "created on the first question" in checks["checkpointer"].detail
    assert checks["feedback"].status == "ok" and checks["langsmith"].status == "ok"
    assert not settings.home.exists()  # the doctor looked; it created nothing
    text = format_checks(list(checks.values()))
    assert "fix: labelgate models build" in text and text.endswith("5 failed, 0 warnings, 4 ok")


def _save_head_voters(settings: Settings, encoder: Path, labels: list[str]) -> None:
    """Voters A and B as saved by training (untrained weights suffice: the doctor checks that they load)."""
    from app.core.voters.base import Voter
    from app.core.voters.heads import MLPHead
    from app.core.voters.store import KIND_HEAD, head_writer, save_voter

    for name in ("A", "B"):
        meta = {"kind": KIND_HEAD, "encoder": str(encoder), "prefix": "", "hidden": 256}
        voter = Voter(name, "v1", labels, lambda texts: None, thresholds=dict.fromkeys(labels, 0.5), meta=meta)  # type: ignore[arg-type,return-value]
        save_voter(settings.voters_dir, voter, head_writer(MLPHead(32, len(labels))))


def test_a_ready_install_passes_and_the_cli_exits_0(  # type: ignore[no-untyped-def]
    settings, tiny_encoder_dir, taxonomy, components, fake_http, monkeypatch
) -> None:
    from app.core.indexing import index_knowledge_base
    from app.service.api import Assistant

    url, _ = fake_http
    ready = settings.model_copy(
        update={
            "encoder_a": str(tiny_encoder_dir),
            "encoder_b": str(tiny_encoder_dir),
            "embedder": str(tiny_encoder_dir),
            "embedder_runtime": "torch",
            "llm_base_url": f"{url}/v1",
        }
    )
    _save_head_voters(ready, tiny_encoder_dir, taxonomy.ids)
    index_knowledge_base(ready)
    with Assistant(components) as assistant:  # the same home: one checkpointed thread, one feedback store
        assistant.ask("我的手机屏幕裂了，保修可以换吗？")
    checks = run_doctor(ready)
    assert [c.name for c in checks if c.status != "ok"] == [], format_checks(checks)
    named = by_name(checks)
    assert "loaded A v1" in named["models:voters"].detail and "1 threads" in named["checkpointer"].detail
    assert "label partitions" in named["chroma"].detail and "answers" in named["llm"].detail
    for key, value in {
        "DATA_DIR": ready.data_dir,
        "HOME": ready.home,
        "MODEL_DIR": ready.model_dir,
        "ENCODER_A": tiny_encoder_dir,
        "ENCODER_B": tiny_encoder_dir,
        "EMBEDDER": tiny_encoder_dir,
        "EMBEDDER_RUNTIME": "torch",
        "LLM_BASE_URL": f"{url}/v1",
    }.items():
        monkeypatch.setenv(f"LABELGATE_{key}", str(value))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True


def test_the_cli_exits_1_when_a_check_fails(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_HOME", str(settings.home))
    monkeypatch.setenv("LABELGATE_MODEL_DIR", str(settings.model_dir))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1 and "fix: labelgate train" in result.stdout


def test_the_llm_check_probes_the_configured_endpoint(settings: Settings, fake_http, silent_port: int) -> None:  # type: ignore[no-untyped-def]
    url, codes = fake_http

    def llm(base_url: str) -> Check:
        return by_name(run_doctor(settings.model_copy(update={"llm_base_url": base_url}), timeout=1.0))["llm"]

    assert llm(f"{url}/v1").status == "ok"
    codes["/v1/models"] = 401
    assert llm(f"{url}/v1").fix == "set LABELGATE_LLM_API_KEY"
    codes["/v1/models"] = 404
    assert llm(f"{url}/v1").status == "warn"
    refused = llm(f"http://127.0.0.1:{free_port()}/v1")
    assert refused.status == "fail" and "unreachable" in refused.detail and "LABELGATE_LLM_BASE_URL" in refused.fix
    started = time.perf_counter()
    assert llm(f"http://127.0.0.1:{silent_port}/v1").status == "fail"  # a hung server: the timeout, not a hang
    assert time.perf_counter() - started < 5
    none = by_name(run_doctor(settings))["llm"]  # the fixture's settings: no URL, no local LLM
    assert none.status == "warn" and "LABELGATE_LLM_BASE_URL" in none.fix


def test_the_chroma_check_on_a_server(settings: Settings, chroma_server_url: str, silent_port: int) -> None:
    served = settings.model_copy(update={"chroma_url": chroma_server_url, "collection": f"doctor-{time.time_ns()}"})
    missing = by_name(run_doctor(served))["chroma"]
    assert missing.status == "fail" and missing.fix == "labelgate index" and "does not exist" in missing.detail
    started = time.perf_counter()
    hung = by_name(run_doctor(served.model_copy(update={"chroma_url": f"http://127.0.0.1:{silent_port}"}), timeout=1))
    assert hung["chroma"].status == "fail" and "unreachable" in hung["chroma"].detail
    assert "LABELGATE_CHROMA_URL" in hung["chroma"].fix and time.perf_counter() - started < 8


def test_the_checkpointer_check_on_each_backend(store_settings: Settings) -> None:
    from app.core.checkpoints import close_checkpointer, make_checkpointer
    from app.core.feedback import FeedbackStore, stored_rows

    first = by_name(run_doctor(store_settings))
    before, feedback_before = first["checkpointer"], first["feedback"]
    assert feedback_before.status == "ok"
    close_checkpointer(make_checkpointer(store_settings))
    after = by_name(run_doctor(store_settings))["checkpointer"]
    assert after.status == "ok"
    if store_settings.database_url:
        assert before.status == "ok" and "the first Assistant to start creates the tables" in before.detail
        assert "set up" in after.detail and "no feedback table yet" in feedback_before.detail
        assert stored_rows(store_settings.feedback_db_url) is None  # the doctor only looked
    else:
        assert before.status == "ok" and "0 threads" in after.detail
    store = FeedbackStore(store_settings.feedback_db_url)
    store.add(thread_id="t", query="屏幕碎了", labels=["屏幕"], source="human", reviewer="alice")
    store.close()
    assert "1 confirmed label sets" in by_name(run_doctor(store_settings))["feedback"].detail


def test_an_unreachable_postgres_fails_the_checkpointer_and_feedback_checks_quickly(settings: Settings) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://lg:s3cret@127.0.0.1:{free_port()}/labelgate"
    started = time.perf_counter()
    checks = by_name(run_doctor(settings.model_copy(update={"database_url": url}), timeout=1))
    assert time.perf_counter() - started < 8
    for name in ("checkpointer", "feedback"):
        assert checks[name].status == "fail" and "s3cret" not in checks[name].detail, checks[name]
    assert "LABELGATE_DATABASE_URL" in checks["checkpointer"].fix


def test_langsmith_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch, fake_http) -> None:  # type: ignore[no-untyped-def]
    url, _ = fake_http

    def langsmith() -> Check:
        return by_name(run_doctor(settings, timeout=1))["langsmith"]

    assert langsmith().status == "ok" and "tracing off" in langsmith().detail
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    monkeypatch.delenv("LANGCHAIN_API_KEY", raising=False)
    assert langsmith().status == "fail" and "LANGSMITH_TRACING=false" in langsmith().fix
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    offline = langsmith()
    assert offline.status == "warn" and "at exit" in offline.detail
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    assert langsmith().status == "ok" and url in langsmith().detail


def test_a_check_that_breaks_is_reported_and_the_rest_still_run(settings: Settings) -> None:
    def broken(s: Settings, timeout: float) -> list[Check]:
        raise RuntimeError("boom")

    def fine(s: Settings, timeout: float) -> list[Check]:
        return [Check("fine", "ok", "fine")]

    checks = run_doctor(settings, parts={"broken": broken, "fine": fine})
    assert [(c.name, c.status) for c in checks] == [("broken", "fail"), ("fine", "ok")]
    assert "RuntimeError: boom" in checks[0].detail and report(checks)["ok"] is False
