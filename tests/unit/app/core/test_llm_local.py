"""The local LLM server manager without the model: GGUF assembly, stale state, clear errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import LLMServerError, ModelBuildError
from app.core.llm import make_chat_model
from app.core.llm_local import GGUF_NAME, build_gguf, serve, status, stop


def parts(tmp_path: Path) -> list[Path]:
    out = []
    for i, payload in enumerate((b"GGUF", b"-part-2", b"-part-3"), 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(payload)
        out.append(path)
    return out


def test_build_gguf_concatenates_in_order_checks_sha_and_is_idempotent(tmp_path: Path) -> None:
    files = parts(tmp_path)
    expected = hashlib.sha256(b"GGUF-part-2-part-3").hexdigest()
    out = build_gguf(tmp_path / "models", parts=files, expected_sha256=expected)
    assert out.name == GGUF_NAME and out.read_bytes() == b"GGUF-part-2-part-3"
    mtime = out.stat().st_mtime_ns
    assert build_gguf(tmp_path / "models", parts=files, expected_sha256=expected).stat().st_mtime_ns == mtime
    with pytest.raises(ModelBuildError, match="sha256"):
        build_gguf(tmp_path / "other", parts=files, expected_sha256="0" * 64)
    assert not (tmp_path / "other" / GGUF_NAME).exists()


def test_status_and_stop_clear_a_dead_server(settings) -> None:  # type: ignore[no-untyped-def]
    assert status(settings) == {"running": False, "healthy": False}
    assert stop(settings) is False
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = settings.home / "llm" / "server.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"pid": int(dead.stdout), "base_url": "http://127.0.0.1:9/v1", "model": "m"}), "utf-8")
    assert status(settings)["running"] is False and not state.exists()


def test_serve_without_a_model_names_the_build_command(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LLMServerError, match="labelgate models build"):
        serve(settings)


def test_chat_model_falls_back_to_none_when_the_local_llm_cannot_start(settings) -> None:  # type: ignore[no-untyped-def]
    assert make_chat_model(settings) is None  # llm_local is off in tests
    assert make_chat_model(settings.model_copy(update={"llm_local": True})) is None  # no GGUF built: warned, no LLM
    remote = make_chat_model(settings.model_copy(update={"llm_base_url": "http://127.0.0.1:9/v1"}))
    assert remote is not None and str(remote.openai_api_base) == "http://127.0.0.1:9/v1"  # type: ignore[attr-defined]
