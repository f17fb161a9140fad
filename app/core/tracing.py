"""LangSmith for the Assistant's turns: the standard LANGSMITH_* variables switch it on; an unreachable LangSmith
neither slows turns down nor stalls process exit.

langsmith's default client retries each failed batch with backoff (urllib3: 3 retries, 0.5 s factor) on top of its
own 3 attempts, and a process waits for its tracing thread at exit: offline, a one-second script took 40 s to exit and
`labelgate bench trace` 80-170 s. The Assistant's client has the urllib3 retries off (a failed batch costs its 3
immediate attempts), and after a failed send its turns go untraced for `trace_pause` seconds (those runs could not be
delivered anyway: langsmith drops a batch whose attempts failed), then the next turn tries again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler
    from langsmith import Client

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_MS = 2_000  # the client's own requests (/info); batch sends use langsmith's (3 s, 10 s)
READ_TIMEOUT_MS = 10_000


class LangSmithTracing:
    """One Assistant's link to LangSmith: its client (None when tracing is off) and the pause after failures."""

    def __init__(self, pause_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        from langsmith.utils import tracing_is_enabled

        self.pause_s = pause_s
        self._clock = clock
        self._failed_at: float | None = None
        self._lock = threading.Lock()
        self.client: Client | None = None
        if tracing_is_enabled():
            from langsmith import Client
            from urllib3.util.retry import Retry

            # endpoint, key and project: the usual LANGSMITH_ENDPOINT / LANGSMITH_API_KEY / LANGSMITH_PROJECT
            self.client = Client(
                retry_config=Retry(total=0),
                timeout_ms=(CONNECT_TIMEOUT_MS, READ_TIMEOUT_MS),
                tracing_error_callback=self._failed,
            )

    def _failed(self, error: Exception) -> None:
        """Called on langsmith's tracing thread when a batch could not be sent."""
        with self._lock:
            first = self._failed_at is None
            self._failed_at = self._clock()
        if first and self.pause_s > 0:
            log.warning(
                "LangSmith unreachable (%s): turns go untraced for %.0f s after each failed send", error, self.pause_s
            )

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._failed_at is not None and self._clock() - self._failed_at < self.pause_s

    def turn(self) -> tuple[list[BaseCallbackHandler], AbstractContextManager[Any]]:
        """What one turn runs with: the callbacks for its config (the LangSmith tracer) and a context to run it in.
        While paused that context switches tracing off: langchain_core would otherwise add its own tracer from the
        variables, on langsmith's default client. No tracer either when tracing is off, or when the caller's own
        `tracing_context` names a client or a parent run (langchain_core's default tracer then follows the caller)."""
        from langsmith.run_helpers import get_tracing_context, tracing_context

        if self.client is None:
            return [], contextlib.nullcontext()
        context = get_tracing_context()
        if context.get("enabled") is False or context.get("client") is not None or context.get("parent") is not None:
            return [], contextlib.nullcontext()
        if self.paused:
            return [], tracing_context(enabled=False)
        from langchain_core.tracers.langchain import LangChainTracer

        return [LangChainTracer(client=self.client)], contextlib.nullcontext()

    def flush(self, timeout: float) -> None:
        if self.client is not None:
            self.client.flush(timeout=timeout)
