"""Feedback faults of the fault soak: the feedback store's disk full while a reviewer confirms labels and while a turn
records LLM labels a voter confirmed. Nothing is lost: the resume (the turn) fails with a FeedbackStoreError, the review
stays pending, and retrying once the disk frees records each row exactly once."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.ops.soak import SoakResult
from app.ops.soak.faultkit import FakeLLMServer, fill, tiny_disk, unfill
from app.ops.soak.outcome import Outcome, fallback, typed_error
from app.ops.soak.scratch import QUERY, escalating


def feedback_fault(settings: Settings, root: Path, result: SoakResult) -> tuple[list[Outcome], str]:
    """The feedback store's disk full while a reviewer confirms labels, and while a turn records LLM labels a voter
    confirmed: the resume (the turn) fails with a FeedbackStoreError and the review stays pending (the turn can be
    asked again); once the disk frees, retrying records each row exactly once."""
    from app.core.llm import make_chat_model
    from app.service.api import Assistant

    disk = root / "tiny-disk"
    with tiny_disk(disk, size_kib=1024) as how:
        store = f"sqlite:///{disk / 'feedback.sqlite'}"
        from app.core.components import Components

        components = Components.load(escalating(settings).model_copy(update={"feedback_url": store}))
        try:
            with Assistant(components) as assistant:
                out = _review_on_full_disk(assistant, disk, how, result)
            with FakeLLMServer("ok") as llm_server:
                llm = make_chat_model(settings.model_copy(update={"llm_base_url": llm_server.base_url}))
                with Assistant(dataclasses.replace(components, llm=llm)) as assistant:
                    out += _turn_on_full_disk(assistant, disk, how, result)
        finally:
            if components.feedback is not None:
                components.feedback.close()
    return out, how


def _review_on_full_disk(assistant: Any, disk: Path, how: str, result: SoakResult) -> list[Outcome]:
    from app.core.errors import FeedbackStoreError, NotPendingError

    store = assistant.components.feedback
    asked = assistant.ask(QUERY)
    if not asked.pending_review:
        result.count("errors")
        return [Outcome("feedback_disk_full:review", "error", "no review to resume", 0.0, False, "no_error")]
    thread = asked.thread_id
    resume = functools.partial(assistant.resume, thread, ["屏幕"], "soak")
    ballast = fill(disk, how, store.engine)
    try:
        out = [typed_error("feedback_disk_full:review", resume, FeedbackStoreError)]
        still = thread in [p.thread_id for p in assistant.pending_reviews()]
        out.append(Outcome("feedback_disk_full:review_still_pending", "fallback", str(still), 0.0, still))
    finally:
        unfill(how, ballast, store.engine)
    out.append(fallback("feedback_disk_freed:review_resumed", resume, ("reviewed_by:",)))
    with contextlib.suppress(NotPendingError):  # a second resume must not record a second row
        resume()
    return [*out, _count_rows("feedback_rows:review", store, thread, ("human",), result)]


def _turn_on_full_disk(assistant: Any, disk: Path, how: str, result: SoakResult) -> list[Outcome]:
    from app.core.errors import FeedbackStoreError

    store = assistant.components.feedback
    ask = functools.partial(assistant.ask, QUERY, "soak-turn-on-full-disk")
    ballast = fill(disk, how, store.engine)
    try:
        out = [typed_error("feedback_disk_full:turn", ask, FeedbackStoreError)]
    finally:
        unfill(how, ballast, store.engine)
    out.append(fallback("feedback_disk_freed:turn_asked_again", ask, ("",)))
    rows = _count_rows("feedback_rows:turn", store, "soak-turn-on-full-disk", ("llm+voter", "llm+rules"), result)
    return [*out, rows]


def _count_rows(fault: str, store: Any, thread: str, sources: tuple[str, ...], result: SoakResult) -> Outcome:
    """Exactly one row for the thread, else feedback_lost / feedback_doubled."""
    rows = [r for r in store.rows() if r.thread_id == thread and r.source in sources]
    result.count("feedback_lost", int(not rows))
    result.count("feedback_doubled", max(0, len(rows) - 1))
    return Outcome(fault, "fallback", f"{len(rows)} row(s) {sorted({r.source for r in rows})}", 0.0, len(rows) == 1)
