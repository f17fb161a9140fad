"""The HTTP chat API over one Assistant (`labelgate serve`): ask, list pending reviews, resolve one, health.

    POST /v1/ask                          {"query": "...", "thread_id"?: "...", "user"?: "..."} → Answer.summary()
    GET  /v1/reviews                      pending reviews (review token)
    POST /v1/reviews/{thread_id}/resolve  {"labels": [...], "reviewer": "..."} → the finished turn (review token)
    GET  /healthz                         {"ok": true}

The review routes take the review token exactly as the review page does (app/service/web.py `token_guard`). A bad
request is a 4xx JSON `{"error": message}`: 400 bad input, 401 no token, 409 no pending review (or waiting for one),
413/415 body.
Turns run on Starlette's worker threads; the Assistant keeps one turn at a time per thread id.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from app.core.errors import InputError
from app.core.extras import require
from app.service.web import errors_as_json, read_json_object, token_guard

MAX_ID_CHARS = 200  # the feedback store's thread_id column


def _optional_id(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise InputError(f"'{key}' must be a non-empty string of at most {MAX_ID_CHARS} characters")
    return value.strip()


def create_server(assistant: Any, token: str) -> Any:
    """A Starlette app serving `assistant`; `token` guards the review routes (at least 8 characters)."""
    require("starlette", "server")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from app.core.errors import ReviewError

    if not token or len(token) < 8:
        raise ReviewError("the review token must have at least 8 characters")
    _, guarded = token_guard(token)

    async def ask(request: Request) -> Response:
        data = await read_json_object(request)
        if isinstance(data, Response):
            return data
        query = data.get("query")
        if not isinstance(query, str):
            raise InputError("'query' (string) is required")
        thread_id, user = _optional_id(data, "thread_id"), _optional_id(data, "user")
        options = data.get("options")  # per-run options (graph/options.py); validated by ask: a 400 names the field
        answer = await run_in_threadpool(lambda: assistant.ask(query, thread_id, user=user, options=options))
        return JSONResponse(answer.summary())

    async def reviews(request: Request) -> Response:
        rows = await run_in_threadpool(assistant.pending_reviews)
        return JSONResponse({"pending": [{"thread_id": r.thread_id, **r.payload, "query": r.query} for r in rows]})

    async def resolve(request: Request) -> Response:
        data = await read_json_object(request)
        if isinstance(data, Response):
            return data
        thread_id = request.path_params["thread_id"]
        labels, reviewer = data.get("labels"), data.get("reviewer")
        answer = await run_in_threadpool(lambda: assistant.resume(thread_id, labels, reviewer))
        return JSONResponse(answer.summary() | {"review": answer.review})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/ask", errors_as_json(ask), methods=["POST"]),
        Route("/v1/reviews", guarded(reviews), methods=["GET"]),
        Route("/v1/reviews/{thread_id}/resolve", guarded(resolve), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


@contextlib.contextmanager
def running(web: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `web` with uvicorn on a free port of `host` in a background thread; yields its base URL."""
    uvicorn = require("uvicorn", "server")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    config = uvicorn.Config(web, log_level="warning", lifespan="off", backlog=1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="labelgate-http")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
