"""What one injected fault led to, and the two checks every fault goes through: a fallback (a reason recorded and a
non-empty answer) or a typed LabelgateError whose message says what to do — each within BOUND seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.errors import LabelgateError

BOUND = 15.0  # seconds a faulted turn or startup may take (LLM: 2 calls x 2 tries x 1 s timeout, SQLite: 5 s lock wait)
HINTS = ("`labelgate", "LABELGATE_", "retry", "free space", "writable", "start it")


@dataclass
class Outcome:
    fault: str
    expected: str  # "fallback" (a reason and a non-empty answer) or "error" (a typed error with a fix hint)
    outcome: str  # the fault's reasons, or "ErrorType: message"
    seconds: float
    ok: bool
    problem: str = ""  # why not: unexpected_error, hang, silent_empty, no_fallback_reason, no_hint, no_error


def fallback(fault: str, ask: Callable[[], Any], wanted: tuple[str, ...]) -> Outcome:
    """Run a turn under a fault: ok when it returns in time with a non-empty answer and a reason starting with one of
    `wanted`."""
    start = time.monotonic()
    try:
        answer = ask()
    except Exception as exc:  # any exception here is a failure of the fallback
        return Outcome(fault, "fallback", f"{type(exc).__name__}: {exc}"[:300], since(start), False, "unexpected_error")
    seconds = since(start)
    found = [r for r in answer.reasons if r.startswith(wanted)]
    problem = (
        "hang"
        if seconds > BOUND
        else "silent_empty"
        if not answer.answer.strip() and not answer.pending_review
        else "no_fallback_reason"
        if not found
        else ""
    )
    return Outcome(fault, "fallback", " ".join(found or answer.reasons), seconds, not problem, problem)


def typed_error(fault: str, action: Callable[[], Any], error: type[LabelgateError] = LabelgateError) -> Outcome:
    """Run a startup or turn that must fail with `error` whose message says what to do, in time."""
    start = time.monotonic()
    try:
        action()
    except error as exc:
        seconds, text = since(start), f"{type(exc).__name__}: {exc}"
        problem = "hang" if seconds > BOUND else "" if any(h in str(exc) for h in HINTS) else "no_hint"
        return Outcome(fault, "error", text[:400], seconds, not problem, problem)
    except Exception as exc:
        return Outcome(fault, "error", f"{type(exc).__name__}: {exc}"[:300], since(start), False, "unexpected_error")
    return Outcome(fault, "error", "no error", since(start), False, "no_error")


def since(start: float) -> float:
    return round(time.monotonic() - start, 3)
