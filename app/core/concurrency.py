"""Small tools the Assistant needs to serve many conversations at once: one lock per conversation, an iterator run
inside a context manager of its own, and a sync iterator consumed from asyncio without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeyedLocks:
    """One lock per key, alive only while someone holds or waits for it (conversations come and go)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


def iterate_within(scope: contextlib.AbstractContextManager[Any], make: Callable[[], Iterator[T]]) -> Iterator[T]:
    """The items of `make()`, each produced inside `scope` (e.g. `tracing_context(...)`), entered in a copy of the
    caller's context: what the scope sets never leaks into the caller's code between items, and it is undone in
    the same context it was set in, whoever closes the iterator and from whichever thread."""
    context = contextvars.copy_context()
    context.run(scope.__enter__)
    try:
        items = context.run(make)
        try:
            while True:
                try:
                    item = context.run(next, items)
                except StopIteration:
                    return
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                context.run(close)
    finally:
        context.run(scope.__exit__, None, None, None)


_DONE = object()


async def iterate_in_thread(make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Items of the sync iterator `make()` as they come, produced on a worker thread (with the caller's context
    variables, as asyncio.to_thread does). A consumer that stops early does not stop the producer: the work it began
    (a graph turn) finishes and is saved, so the conversation is never left half-done."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    listening = threading.Event()
    listening.set()

    def send(item: object, error: BaseException | None = None) -> None:
        if listening.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(queue.put_nowait, (item, error))

    def produce() -> None:
        try:
            for item in make():
                send(item)
        except BaseException as exc:  # handed to the consumer, raised there
            if not listening.is_set():
                log.warning("a turn whose caller stopped listening failed: %r", exc)
            send(_DONE, exc)
        else:
            send(_DONE)

    worker = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while True:
            item, error = await queue.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield cast(T, item)
    finally:
        listening.clear()
        if not worker.done():
            log.debug("the caller stopped listening: the turn finishes on its worker thread")
