"""The review web page: pending reviews with their candidate labels (sources, scores); pick labels, submit.

Served two ways over one app:
- as custom routes of the LangGraph server (`langgraph.json` → `http.app` = `app` below), backed by the server's own
  threads through the in-process SDK client;
- alone (`labelgate review serve`), backed by the Assistant and its checkpointer.

Every route needs the review token: `Authorization: Bearer <token>`, or the cookie set when the page is opened once
with `?token=<token>` (HttpOnly, SameSite=Strict; the page then redirects to a URL without the token).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlparse

from app.core.config import Settings
from app.core.errors import ConfigError, LabelgateError, NotPendingError, ReviewError, StoreUnavailableError
from app.core.extras import require
from app.core.reviews import validate_resume
from app.core.taxonomy import Taxonomy

log = logging.getLogger("labelgate.review")

COOKIE = "labelgate_review"
PREFIX = "/review"
MAX_BODY = 64 * 1024


class ReviewBackend(Protocol):
    taxonomy: Taxonomy

    async def pending(self) -> list[dict[str, Any]]: ...

    async def resolve(self, thread_id: str, labels: list[str], reviewer: str) -> dict[str, Any]: ...


class AssistantBackend:
    """Reviews paused in the Assistant's checkpointer (`labelgate review serve`, or any chat service process)."""

    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant
        self.taxonomy: Taxonomy = assistant.components.taxonomy

    async def pending(self) -> list[dict[str, Any]]:
        from starlette.concurrency import run_in_threadpool

        rows = await run_in_threadpool(self.assistant.pending_reviews)
        return [{"thread_id": row.thread_id, **row.payload, "query": row.query} for row in rows]

    async def resolve(self, thread_id: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        answer = await run_in_threadpool(lambda: self.assistant.resume(thread_id, labels=labels, reviewer=reviewer))
        return dict(answer.summary())


class ServerBackend:
    """Threads of the LangGraph server these routes are mounted in (in-process SDK client, no network hop)."""

    def __init__(self, taxonomy: Taxonomy, graph_id: str = "labelgate", client: Any = None) -> None:
        self.taxonomy = taxonomy
        self.graph_id = graph_id
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from langgraph_sdk import get_client

            self._client = get_client(url=None)
        return self._client

    async def pending(self) -> list[dict[str, Any]]:
        threads = await self.client.threads.search(status="interrupted", limit=200, sort_order="asc")
        rows = []
        for thread in threads:
            for interrupts in (thread.get("interrupts") or {}).values():
                for item in interrupts:
                    value = item.get("value")
                    if isinstance(value, dict) and "candidates" in value:
                        rows.append({"thread_id": str(thread["thread_id"]), **value})
        return rows

    async def resolve(self, thread_id: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        try:
            thread = await self.client.threads.get(thread_id)
        except Exception as exc:  # the SDK raises httpx errors for unknown ids
            raise NotPendingError(f"thread {thread_id} not found") from exc
        if thread.get("status") != "interrupted":
            raise NotPendingError(f"thread {thread_id} has no pending review")
        values = await self.client.runs.wait(
            thread_id, self.graph_id, command={"resume": {"labels": labels, "reviewer": reviewer}}
        )
        keys = ("query", "answer", "labels", "label_source", "decision", "route", "reasons", "citations")
        state = await self.client.threads.get(thread_id)
        return {"thread_id": thread_id, **{k: values.get(k) for k in keys if isinstance(values, dict)}} | {
            "pending_review": state.get("status") == "interrupted"
        }


Handler = Callable[[Any], Awaitable[Any]]


def token_guard(token: str) -> tuple[Callable[[Any], bool], Callable[[Handler], Handler]]:
    """(authorized, guarded) for routes that need the review token: `Authorization: Bearer <token>` or the page's
    cookie, compared in constant time; a guarded handler answers 401 without it, and typed errors as 4xx JSON."""
    from starlette.responses import JSONResponse

    def authorized(request: Any) -> bool:
        header = request.headers.get("authorization", "")
        offered = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: Any) -> Any:
            if not authorized(request):
                return JSONResponse({"error": "review token required"}, status_code=401)
            return await errors_as_json(handler)(request)

        return wrapper

    return authorized, guarded


def errors_as_json(handler: Handler) -> Handler:
    """Typed errors as JSON with their message: 409 for a thread with no pending review, 503 when a store the server
    depends on fails (feedback disk full, checkpoints locked, Chroma down: retry later), else 400."""
    from starlette.responses import JSONResponse

    async def wrapper(request: Any) -> Any:
        try:
            return await handler(request)
        except NotPendingError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except StoreUnavailableError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "30"})
        except LabelgateError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return wrapper


async def read_json_object(request: Any, max_body: int = MAX_BODY) -> Any:
    """The request's JSON body when it is an object (a dict), else the 4xx JSONResponse (a Response) that says what is
    wrong with it: 415 not JSON, 413 over max_body bytes, 400 invalid JSON or not an object."""
    from starlette.responses import JSONResponse

    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
    body = await request.body()
    if len(body) > max_body:
        return JSONResponse({"error": f"request body over {max_body} bytes"}, status_code=413)
    try:
        data = json.loads(body)
    except ValueError as exc:
        return JSONResponse({"error": f"invalid JSON: {exc}"}, status_code=400)
    return data if isinstance(data, dict) else JSONResponse({"error": "send a JSON object"}, status_code=400)


def page_html() -> str:
    return resources.files("app.service").joinpath("review_page.html").read_text(encoding="utf-8")


def create_app(backend: Callable[[], ReviewBackend], token: str, *, lifespan: Any = None) -> Any:
    """A Starlette app with the review page and its JSON API under /review; `backend` is called once, on first use."""
    require("starlette", "server")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    if not token or len(token) < 8:
        raise ReviewError("the review token must have at least 8 characters")
    holder: dict[str, ReviewBackend] = {}

    def get_backend() -> ReviewBackend:
        if "backend" not in holder:
            holder["backend"] = backend()
        return holder["backend"]

    authorized, guarded = token_guard(token)

    async def page(request: Request) -> Response:
        offered = request.query_params.get("token")
        if offered is not None:
            if not hmac.compare_digest(offered.encode(), token.encode()):
                return HTMLResponse(_login_html("wrong token"), status_code=401)
            response = RedirectResponse(PREFIX, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path=PREFIX)
            return response
        if not authorized(request):
            return HTMLResponse(_login_html(), status_code=401)
        nonce = secrets.token_urlsafe(12)  # only the page's own script and style run, whatever a query contains
        html = page_html().replace("<script>", f'<script nonce="{nonce}">')
        html = html.replace("<style>", f'<style nonce="{nonce}">')
        csp = f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; frame-ancestors 'none'"
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Content-Security-Policy": csp}
        return HTMLResponse(html, headers=headers)

    async def pending(request: Request) -> Response:
        b = get_backend()
        labels = [{"id": x.id, "parent": x.parent, "description": x.description} for x in b.taxonomy.labels]
        return JSONResponse({"pending": await b.pending(), "labels": labels})

    async def resolve(request: Request) -> Response:
        data = await read_json_object(request)
        if isinstance(data, Response):
            return data
        if not isinstance(data.get("thread_id"), str) or not data["thread_id"].strip():
            return JSONResponse({"error": "'thread_id' (string) is required"}, status_code=400)
        b = get_backend()
        labels, reviewer = validate_resume({"labels": data.get("labels"), "reviewer": data.get("reviewer")}, b.taxonomy)
        result = await b.resolve(data["thread_id"].strip(), labels, reviewer)
        log.info("review %s resolved by %s: %s", data["thread_id"], reviewer, labels)
        return JSONResponse({"resolved": result})

    routes = [
        Route(PREFIX, page, methods=["GET"]),
        Route(f"{PREFIX}/api/pending", guarded(pending), methods=["GET"]),
        Route(f"{PREFIX}/api/resolve", guarded(resolve), methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _login_html(error: str = "") -> str:
    note = f'<p class="error">{error}</p>' if error else ""
    return (
        '<!doctype html><html lang="zh"><meta charset="utf-8"><title>labelgate review — token</title>'
        '<body style="font-family:sans-serif;max-width:30em;margin:4em auto">'
        f"<h1>labelgate review</h1>{note}<p>This page needs the review token.</p>"
        f'<form method="get" action="{PREFIX}"><input id="token" name="token" type="password" placeholder="token" '
        'autofocus> <button type="submit">open</button></form></body></html>'
    )


def new_token() -> str:
    return secrets.token_urlsafe(18)


def serve_token(settings: Settings, host: str) -> str:
    """The configured token; a random per-run one only on loopback (elsewhere the token must be configured)."""
    if settings.review_token:
        return settings.review_token.get_secret_value()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"set LABELGATE_REVIEW_TOKEN to serve the review page on {host} (not a loopback address)")
    return new_token()


def with_doc_reviews(backend: Any, settings: Settings) -> Any:
    """The backend plus the doc reviews `labelgate index` queued (same page, token and feedback store)."""
    from app.core.docreviews import WithDocReviews
    from app.core.feedback import FeedbackStore
    from app.core.indexing import doc_review_queue

    return WithDocReviews(backend, doc_review_queue(settings), FeedbackStore(settings.feedback_db_url))


def server_app() -> Any:
    """The app mounted by `langgraph dev`/`langgraph up` (langgraph.json http.app); settings load on first use."""
    from app.core.config import load_settings

    settings = load_settings()
    # `langgraph dev` exports the URL it serves on; no URL (a container: `langgraph up`) counts as reachable
    host = urlparse(os.environ.get("LANGGRAPH_API_URL", "")).hostname or "(unknown address)"
    token = serve_token(settings, host)  # no configured token: refuses to start unless on loopback
    if not settings.review_token:
        log.warning("LABELGATE_REVIEW_TOKEN is not set; this server's review token is %s (open /review?token=…)", token)
    # at startup, not in a request (opening the feedback store creates its folder: blocking I/O)
    backend = with_doc_reviews(ServerBackend(Taxonomy.load(settings.data_dir / "taxonomy.yaml")), settings)

    @contextlib.asynccontextmanager
    async def warm_models(_: Any) -> AsyncIterator[None]:
        """Load the models while the server starts, so the first run does not wait for them."""
        from graph.builder import server_graph

        await server_graph()
        yield

    return create_app(lambda: backend, token, lifespan=warm_models)


def __getattr__(name: str) -> Any:
    """`app` for langgraph.json, built on first access: importing this module has no side effects."""
    if name == "app":
        globals()["app"] = built = server_app()
        return built
    raise AttributeError(name)
