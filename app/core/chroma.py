"""Chroma clients: the embedded store in the state dir, a Chroma server over HTTP (LABELGATE_CHROMA_URL) with
request timeouts, and the in-memory one; a store that cannot be opened is a KnowledgeBaseError saying what to do."""

from __future__ import annotations

import logging
from typing import Any

from app.core.config import Settings
from app.core.errors import KnowledgeBaseError, redact_url

log = logging.getLogger(__name__)


def make_client(settings: Settings) -> Any:
    """Embedded PersistentClient in the data dir, or an HttpClient when LABELGATE_CHROMA_URL is set; a store that
    cannot be opened is a KnowledgeBaseError that says what to do."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        return http_client(settings.chroma_url, timeout=settings.chroma_timeout, settings=chroma_settings)
    try:
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
    except Exception as exc:  # OSError, or chromadb's own errors for a corrupt store
        raise KnowledgeBaseError(
            f"cannot open the embedded Chroma store at {settings.chroma_dir}: {exc} "
            "(fix the permissions of LABELGATE_HOME, or move the directory away and run `labelgate index`)"
        ) from exc


def http_client(url_text: str, *, timeout: float, settings: Any = None) -> Any:
    """A Chroma HttpClient whose requests time out (chromadb's own wait forever): checked with a heartbeat first,
    so an unreachable server is an error naming the URL within `timeout` seconds."""
    import urllib.request
    from urllib.parse import urlparse

    import chromadb
    import httpx

    if settings is None:
        from chromadb.config import Settings as ChromaSettings

        settings = ChromaSettings(anonymized_telemetry=False)
    url = urlparse(url_text)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise KnowledgeBaseError(f"LABELGATE_CHROMA_URL {redact_url(url_text)} is not an http(s)://host:port URL")
    port = url.port or 8000
    hint = (
        "start it (`chroma run --path DIR --host HOST --port PORT`), fix LABELGATE_CHROMA_URL, "
        "or unset it for the embedded store"
    )
    try:
        with urllib.request.urlopen(f"{url.scheme}://{url.hostname}:{port}/api/v2/heartbeat", timeout=timeout):
            pass
        client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https", settings=settings)
    except Exception as exc:  # URLError, timeouts, chromadb's ValueError("Could not connect ...")
        raise KnowledgeBaseError(f"the Chroma server at {redact_url(url_text)} is unreachable ({exc}): {hint}") from exc
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout)
    else:
        log.warning("cannot set a request timeout on this chromadb client: a stalled server may block queries")
    return client


def ephemeral_client() -> Any:
    """An in-memory Chroma (demo side collections, tests). Chroma keeps one per process and refuses a second with
    other settings, so every caller goes through here."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
