"""Load (issue 9 item 2): C concurrent callers × Q queries (50 × 200; quick: 10 × 10) through the Python API
(`Assistant.ask` / `resume` on threads) and through the HTTP server (`app/service/server.py`, real uvicorn on localhost,
one httpx client per caller), one Assistant behind both.

Leakage check, per thread: every caller asks on thread ids of its own, cycling through real demo queries. Each query
was first asked once alone (the reference); a concurrent answer must carry its own thread id and query, and the
reference's labels, decision, route, answer and review state. Through Python the thread's checkpoint and its review
payload must hold the caller's query too. A paused thread is resolved by its caller with a label and reviewer of
its own, and the result must carry exactly those; afterwards the feedback store must hold exactly one human row per
resolved thread, with that thread's query, label and reviewer, and no thread that paused may still be pending.

No LLM: answering 20,000 turns through the bundled 1.5B model on 2 cores is hours, not a bounded soak, and a fake
LLM would measure the fake. Without an LLM the graph takes its documented fallbacks (extract skipped → review;
answer from passages), so the soak measures the serving path itself: voters, Chroma, rerank, the checkpointer, the
stores, the locks and the HTTP layer. `models` in the figures names the voters (the home's trained ones, else tiny).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.ops.soak import SoakResult
from app.ops.soak.common import percentiles, scratch_home, soak_queries

FIELDS = ("labels", "decision", "route", "label_source", "answer", "pending_review")
Ask = Callable[[str, str], dict[str, Any]]
Resolve = Callable[[str, list[str], str], dict[str, Any]]
StateCheck = Callable[[str, str], bool]
BUDGET_S = 840.0  # both channels together; 50 × 200 took 582 s (Python) + 507 s (HTTP) on a shared 2-core machine


class Tally:
    """What the callers of one channel saw (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ask_seconds: list[float] = []
        self.resolve_seconds: list[float] = []
        self.errors = 0
        self.leaks = 0
        self.samples: list[str] = []
        self.resolved: dict[str, tuple[str, str, str]] = {}  # thread → (query, label, reviewer)
        self.paused: list[str] = []
        self.stopped = 0  # callers stopped by the time bound before their last query

    def problem(self, kind: str, what: str) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if len(self.samples) < 5:
                self.samples.append(f"{kind}: {what}"[:300])


def _caller(
    c: int, per: int, channel: str, queries: list[str], reference: dict[str, dict[str, Any]], fine: list[str],
    expand: Callable[[list[str]], list[str]], ask: Ask, resolve: Resolve, state_ok: StateCheck | None, tally: Tally,
    deadline: float = float("inf"),
) -> None:  # fmt: skip
    for i in range(per):
        if time.monotonic() > deadline:  # the soak's time bound: stop between turns, never inside one
            with tally.lock:
                tally.stopped += 1
            return
        query = queries[(c * 13 + i) % len(queries)]
        tid = f"{channel}-{c}-{i}"
        try:
            t = time.perf_counter()
            out = ask(query, tid)
            took = time.perf_counter() - t
        except Exception as exc:  # counted and sampled; the soak goes on
            tally.problem("errors", f"{tid} ask: {type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.ask_seconds.append(took)
        want = reference[query]
        got = {key: out.get(key) for key in FIELDS}
        if out.get("thread_id") != tid or out.get("query") != query or got != want:
            tally.problem("leaks", f"{tid} asked {query!r}, got {out.get('thread_id')} {out.get('query')!r} {got}")
        if state_ok is not None and not state_ok(tid, query):
            tally.problem("leaks", f"{tid}: the checkpoint or review payload holds another query than {query!r}")
        if not out.get("pending_review"):
            continue
        with tally.lock:
            tally.paused.append(tid)
        label, reviewer = fine[(c + i) % len(fine)], f"{channel}-caller-{c}"
        try:
            t = time.perf_counter()
            done = resolve(tid, [label], reviewer)
            took = time.perf_counter() - t
        except Exception as exc:
            tally.problem("errors", f"{tid} resolve: {type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.resolve_seconds.append(took)
            tally.resolved[tid] = (query, label, reviewer)
        ok = (
            done.get("thread_id") == tid
            and done.get("query") == query
            and done.get("labels") == expand([label])
            and done.get("label_source") == "human"
            and (done.get("review") or {}).get("reviewer") == reviewer
            and not done.get("pending_review")
        )
        if not ok:
            tally.problem("leaks", f"{tid} resolved with {label}/{reviewer}, got {done}")


def _channel(
    channel: str, callers: int, per: int, queries: list[str], reference: dict[str, dict[str, Any]], assistant: Any,
    ask: Ask, resolve: Resolve, state_ok: StateCheck | None, budget_s: float,
) -> Tally:  # fmt: skip
    tally = Tally()
    deadline = time.monotonic() + budget_s
    taxonomy = assistant.components.taxonomy
    fine = [x.id for x in taxonomy.labels if x.parent]
    with ThreadPoolExecutor(callers, thread_name_prefix=f"soak-{channel}") as pool:
        futures = [
            pool.submit(
                _caller,
                c,
                per,
                channel,
                queries,
                reference,
                fine,
                taxonomy.expand,
                ask,
                resolve,
                state_ok,
                tally,
                deadline,
            )
            for c in range(callers)
        ]
        for future in futures:
            future.result()
    return tally


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def _python_channel(assistant: Any) -> tuple[Ask, Resolve, StateCheck]:
    def ask(query: str, tid: str) -> dict[str, Any]:
        return dict(assistant.ask(query, tid).summary())

    def resolve(tid: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        answer = assistant.resume(tid, labels, reviewer)
        return dict(answer.summary()) | {"review": answer.review}

    def state_ok(tid: str, query: str) -> bool:
        snapshot = assistant.graph.get_state(_config(tid))
        payloads = [i.value for i in snapshot.interrupts]
        return snapshot.values.get("query") == query and all(p.get("query") == query for p in payloads)

    return ask, resolve, state_ok


def _http_channel(url: str, token: str) -> tuple[Ask, Resolve, Callable[[], None]]:
    """ask/resolve over one httpx client per calling thread."""
    import httpx

    local = threading.local()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120.0)
            clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def reply(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response.json()  # type: ignore[no-any-return]

    def ask(query: str, tid: str) -> dict[str, Any]:
        return reply(client().post("/v1/ask", json={"query": query, "thread_id": tid}))

    def resolve(tid: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"labels": labels, "reviewer": reviewer}
        return reply(client().post(f"/v1/reviews/{tid}/resolve", json=body, headers=headers))

    def close() -> None:
        for each in clients:
            each.close()

    return ask, resolve, close


def _figures(tally: Tally, seconds: float) -> dict[str, Any]:
    return {
        "turns": len(tally.ask_seconds),
        "resolved": len(tally.resolved),
        "seconds": round(seconds, 1),
        "qps": round((len(tally.ask_seconds) + len(tally.resolve_seconds)) / seconds, 1) if seconds else 0.0,
        "ask": percentiles(tally.ask_seconds),
        "resolve": percentiles(tally.resolve_seconds),
        "callers_stopped_by_time_bound": tally.stopped,
        "errors": tally.errors,
        "leaks": tally.leaks,
        "samples": tally.samples,
    }


def run(
    settings: Settings,
    workdir: Path,
    *,
    quick: bool,
    callers: int | None = None,
    per_caller: int | None = None,
    budget_s: float = BUDGET_S,
) -> SoakResult:
    """The load soak in a scratch home under `workdir`; `callers` / `per_caller` override its size (tests). Each
    channel gets half of `budget_s`: callers still asking then stop between turns (counted in the figures), which
    keeps `make soak` bounded on a slow or shared machine."""
    from app.core.components import Components
    from app.service.api import Assistant
    from app.service.server import create_server, running
    from app.service.web import new_token

    t0 = time.monotonic()
    result = SoakResult("load")
    workdir.mkdir(parents=True, exist_ok=True)
    home = scratch_home(settings, workdir)
    s = home.settings
    callers = callers or (10 if quick else 50)
    per = per_caller or (10 if quick else 200)
    queries = soak_queries(s, 20 if quick else 60)
    tallies: dict[str, Tally] = {}
    seconds: dict[str, float] = {}
    with Assistant(Components.load(s)) as assistant:
        reference = {}
        for j, query in enumerate(queries):  # alone, one at a time: what each query's answer must be under load
            alone = assistant.ask(query, f"reference-{j}").summary()
            reference[query] = {key: alone.get(key) for key in FIELDS}
            if reference[query]["pending_review"]:
                assistant.resume(f"reference-{j}", [assistant.components.taxonomy.ids[0]], "reference")
        ask, resolve, state_ok = _python_channel(assistant)
        t = time.monotonic()
        tallies["python"] = _channel(
            "py", callers, per, queries, reference, assistant, ask, resolve, state_ok, budget_s / 2
        )
        seconds["python"] = time.monotonic() - t
        token = new_token()
        with running(create_server(assistant, token)) as url:
            http_ask, http_resolve, close = _http_channel(url, token)
            t = time.monotonic()
            tallies["http"] = _channel(
                "http", callers, per, queries, reference, assistant, http_ask, http_resolve, None, budget_s / 2
            )
            seconds["http"] = time.monotonic() - t
            close()
        # thread by thread: `pending_reviews()` reads every checkpoint of every thread (20,000 threads here)
        paused = [tid for tally in tallies.values() for tid in tally.paused]
        still_pending = sum(bool(assistant.graph.get_state(_config(tid)).interrupts) for tid in paused)
    result.count("reviews_lost", still_pending)
    _check_feedback(s, tallies, result)
    for tally in tallies.values():
        result.count("errors", tally.errors)
        result.count("leaks", tally.leaks)
    result.figures = {
        "models": home.models,
        "llm": "none (extract skipped → review; answers from passages)",
        "callers": callers,
        "queries_per_caller": per,
        "planned_turns_per_channel": callers * per,
        "time_bound_s": budget_s,
        "distinct_queries": len(queries),
        "paused_share_of_reference": round(
            sum(bool(r["pending_review"]) for r in reference.values()) / len(queries), 3
        ),
        "paused": sum(len(tally.paused) for tally in tallies.values()),
        "still_pending": still_pending,
    } | {name: _figures(tally, seconds[name]) for name, tally in tallies.items()}
    result.seconds = round(time.monotonic() - t0, 1)
    return result


def _check_feedback(settings: Settings, tallies: dict[str, Tally], result: SoakResult) -> None:
    """Exactly one human row per resolved thread, with its own query, label and reviewer."""
    from app.core.feedback import FeedbackStore

    resolved = {tid: want for tally in tallies.values() for tid, want in tally.resolved.items()}
    store = FeedbackStore(settings.feedback_db_url)
    try:
        rows = [row for row in store.rows(sources=["human"]) if not row.thread_id.startswith("reference-")]
    finally:
        store.close()
    counts = Counter(row.thread_id for row in rows)
    result.count("feedback_lost", sum(1 for tid in resolved if counts[tid] == 0))
    result.count("feedback_doubled", sum(n - 1 for n in counts.values() if n > 1))
    for row in rows:
        want = resolved.get(row.thread_id)
        if want is None or row.query != want[0] or want[1] not in row.labels or row.reviewer != want[2]:
            result.count("leaks")
