"""Fault injectors for `app.ops.soak.faults` and the fault tests: a misbehaving OpenAI-compatible LLM server, a closed
port, a TCP proxy that stalls, a write-locked SQLite file, a read-only directory and a tiny disk that fills up.

Each is the real thing where the machine allows it: the read-only directory is a read-only bind mount and the tiny
disk a size-limited tmpfs when running as root (root ignores file modes); otherwise a chmod, and a store
engine whose writes fail with SQLite's own full-disk error (SQLITE_FULL, "database or disk is full").
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

LLM_MODES = ("ok", "slow", "garbage_json", "not_json", "empty", "error_500")
EXTRACTION = {"labels": ["屏幕", "售后"], "entities": [{"type": "product", "value": "手机"}]}


class FaultUnavailable(OSError):
    """This machine cannot inject the fault for real (the caller reports it skipped, not passed)."""


def completion(content: str, model: str = "fake") -> dict[str, Any]:
    """An OpenAI chat.completion body holding `content`."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeLLMServer:
    """An OpenAI-compatible /v1/chat/completions on a free localhost port whose behaviour is `mode`:
    ok (a valid extraction for the extractor, a cited answer otherwise), slow (sleeps `delay` s before answering),
    garbage_json (200, content that is not the JSON asked for), not_json (200, an HTML body), empty (200, empty
    content), error_500. Counts requests. Use as a context manager; point LABELGATE_LLM_BASE_URL at `.base_url`."""

    def __init__(self, mode: str = "ok", *, delay: float = 5.0) -> None:
        if mode not in LLM_MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(LLM_MODES)}")
        self.mode, self.delay, self.requests = mode, delay, 0
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def reply(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one chat request in the current mode."""
        if self.mode == "error_500":
            return 500, "application/json", b'{"error": {"message": "internal error", "type": "server_error"}}'
        if self.mode == "not_json":
            return 200, "text/html", b"<html><body>502 Bad Gateway</body></html>"
        if self.mode == "slow":
            self._stop.wait(self.delay)
        if self.mode == "garbage_json":
            content = '{"labels": "屏幕' + "\x00}}}not json"
        elif self.mode == "empty":
            content = ""
        elif "response_format" in request:
            content = json.dumps(EXTRACTION, ensure_ascii=False)
        else:
            content = "屏幕损坏在保修期内可免费更换一次 [D1]。"
        return 200, "application/json", json.dumps(completion(content), ensure_ascii=False).encode()

    def __enter__(self) -> FakeLLMServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
                fake.requests += 1
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = {}
                status, content_type, payload = fake.reply(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) before the slow reply
                    pass

            def do_GET(self) -> None:  # /v1/models, as `labelgate doctor` probes it
                payload = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-llm").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # slow replies end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use FakeLLMServer as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"


class StallingProxy:
    """A TCP proxy to `host:port` on a free localhost port that can stall: while stalled, bytes are accepted and not
    forwarded, as from a server that hangs mid-request (the client's own timeout must end the wait)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._listener: socket.socket | None = None

    def __enter__(self) -> StallingProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True, name="stalling-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()

    @property
    def url(self) -> str:
        assert self._listener is not None, "use StallingProxy as a context manager"
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                return
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while self.stalled.is_set() and not self._closed.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()


def closed_port_url() -> str:
    """The URL of a localhost port nothing listens on (connections are refused at once)."""
    from app.ops.testservers import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


@contextlib.contextmanager
def sqlite_write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock of the SQLite file (as a second process mid-transaction would)."""
    conn = sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _root_can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/self/mountinfo").exists()


def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """`directory` made read-only for this process: a read-only bind mount over itself as root (EROFS, which root
    cannot bypass), else mode 0555 on the directory and 0444 on its files. Yields how ("bind-mount-ro" / "chmod")."""
    if _root_can_mount() and _mount("--bind", str(directory), str(directory)):
        if _mount("-o", "remount,ro,bind", str(directory)):
            try:
                yield "bind-mount-ro"
            finally:
                _umount(directory)
            return
        _umount(directory)
    if os.geteuid() == 0:
        raise FaultUnavailable("running as root without mount: a chmod would not stop root from writing")
    modes = {path: path.stat().st_mode for path in [directory, *directory.rglob("*")]}
    try:
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield "chmod"
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))


@contextlib.contextmanager
def tiny_disk(directory: Path, *, size_kib: int = 512) -> Iterator[str]:
    """A size-limited tmpfs mounted at `directory` as root (real ENOSPC once full); without root the directory stays
    as it is and `fill` makes the store's writes fail as on a full disk. Yields "tmpfs" or "sqlite-full-error"."""
    directory.mkdir(parents=True, exist_ok=True)
    if _root_can_mount() and _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(directory)):
        try:
            yield "tmpfs"
        finally:
            _umount(directory)
        return
    yield "sqlite-full-error"


def fill(directory: Path, how: str, engine: sa.Engine | None = None) -> Path | None:
    """Fill the tiny disk: on tmpfs a ballast file takes every free byte (returned: delete it with `unfill` to free
    the disk); otherwise writes through `engine` fail with the error SQLite gives on a full disk (SQLITE_FULL)."""
    if how == "tmpfs":
        ballast = directory / "ballast"
        with contextlib.suppress(OSError), ballast.open("wb", buffering=0) as handle:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
                with contextlib.suppress(OSError):
                    while True:
                        handle.write(b"\0" * size)
        return ballast
    if engine is None:
        raise ValueError("without a tmpfs, a full disk is simulated on the store's engine")
    sa.event.listen(engine, "before_cursor_execute", _disk_full)
    return None


def unfill(how: str, ballast: Path | None, engine: sa.Engine | None = None) -> None:
    """Free the tiny disk again."""
    if how == "tmpfs" and ballast is not None:
        ballast.unlink(missing_ok=True)
    elif engine is not None and sa.event.contains(engine, "before_cursor_execute", _disk_full):
        sa.event.remove(engine, "before_cursor_execute", _disk_full)


def _disk_full(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "CREATE", "ALTER")):
        raise sqlite3.OperationalError("database or disk is full")
