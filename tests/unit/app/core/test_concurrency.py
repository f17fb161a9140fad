"""One lock per conversation; a sync iterator consumed from asyncio on a worker thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from app.core.concurrency import KeyedLocks, iterate_in_thread, iterate_within


def test_one_key_waits_other_keys_do_not() -> None:
    locks = KeyedLocks()
    entered = {"a": threading.Event(), "b": threading.Event()}

    def enter(key: str) -> None:
        with locks.hold(key):
            entered[key].set()

    with locks.hold("a"):
        other, same = threading.Thread(target=enter, args=("b",)), threading.Thread(target=enter, args=("a",))
        other.start()
        same.start()
        assert entered["b"].wait(5)  # another key goes ahead
        assert not entered["a"].wait(0.2)  # the same key waits for the holder
        assert len(locks) == 1  # b is done and gone; a has its holder and its waiter on one lock
    assert entered["a"].wait(5)
    other.join()
    same.join()
    assert len(locks) == 0  # nothing kept once nobody holds or waits


def test_a_failing_holder_releases_its_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError), locks.hold("k"):
        raise RuntimeError("boom")
    with locks.hold("k"):
        assert len(locks) == 1
    assert len(locks) == 0


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_items_arrive_in_order_from_a_worker_thread_with_the_callers_context() -> None:
    seen_threads: set[str] = set()

    def numbers() -> Iterator[tuple[int, str]]:
        for i in range(5):
            seen_threads.add(threading.current_thread().name)
            yield i, REQUEST_ID.get()

    async def main() -> list[tuple[int, str]]:
        REQUEST_ID.set("req-7")
        return [item async for item in iterate_in_thread(numbers)]

    assert asyncio.run(main()) == [(i, "req-7") for i in range(5)]
    assert threading.main_thread().name not in seen_threads


def test_an_error_reaches_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad step")

    async def main() -> list[int]:
        got = []
        with pytest.raises(ValueError, match="bad step"):
            async for item in iterate_in_thread(failing):
                got.append(item)
        return got

    assert asyncio.run(main()) == [1]


def test_a_consumer_that_stops_early_lets_the_work_finish() -> None:
    finished = threading.Event()

    def slow() -> Iterator[int]:
        for i in range(3):
            time.sleep(0.02)
            yield i
        finished.set()

    async def main() -> int:
        async for item in iterate_in_thread(slow):
            return item
        return -1

    assert asyncio.run(main()) == 0
    assert finished.wait(5)


def test_a_scope_applies_to_each_item_and_never_leaks() -> None:
    import contextlib

    @contextlib.contextmanager
    def request(value: str) -> Iterator[None]:
        token = REQUEST_ID.set(value)
        try:
            yield
        finally:
            REQUEST_ID.reset(token)

    def seen() -> Iterator[str]:
        for _ in range(3):
            yield REQUEST_ID.get()

    between = []
    items = iterate_within(request("inside"), seen)
    for item in items:
        between.append(REQUEST_ID.get())
        assert item == "inside"
    assert between == ["-", "-", "-"]  # the caller's own code between items never sees the scope

    early = iterate_within(request("inside"), seen)
    assert next(early) == "inside"
    closer = threading.Thread(target=early.close)  # closed from another thread: undone where it was set
    closer.start()
    closer.join()
    assert REQUEST_ID.get() == "-"
