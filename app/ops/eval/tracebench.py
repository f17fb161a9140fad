"""`labelgate bench trace`: what LangSmith tracing costs a turn and what it does to process exit, on this machine.

Each mode runs in a fresh interpreter (langsmith reads its variables once per process, and a tracing thread must not
outlive its mode), rounds alternate the modes so a busy machine weighs on all of them alike:
- `off`: LANGSMITH_TRACING=false;
- `unreachable`: tracing on, LangSmith a refused local port (after the first failed send turns go untraced for
  `trace_pause` seconds); `unreachable-no-pause`: the same with `trace_pause` 0, every turn traced and failing;
- `fake`: tracing on, a local fake LangSmith that takes everything (the cost of really sending; runs are counted);
- `hosted`: tracing on, langsmith's default endpoint — run only when its host does not resolve (an offline
  machine), so no query ever leaves this one;
- `default-client`: unreachable as above, through langsmith's default client (what labelgate's replaces).
A turn is `Assistant.ask` with the real models, no LLM (escalations pause at review) and an in-memory checkpointer;
exit is the time from the child's last output line to its end.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from app.core.config import Settings
from app.core.errors import ConfigError, JobError
from app.ops.eval.latency import percentiles

MODES = ("off", "unreachable", "unreachable-no-pause", "fake", "hosted", "default-client")
WARMUP = 5


def measure_turns(
    assistant: Any, queries: Sequence[str], *, paired: bool, default_client: bool = False
) -> dict[str, Any]:
    """Per-turn latency of `assistant.ask`, one query at a time, each on a new thread, after a few warm-up turns.
    `paired`: each query is also asked with tracing switched off for that turn (`tracing_context(enabled=False)`),
    in alternating order, so the paired difference is the tracer's cost under the same machine load."""
    import contextlib

    from langsmith.run_helpers import tracing_context
    from langsmith.run_trees import get_cached_client

    def turn(query: str, thread_id: str, traced: bool) -> float:
        scope = contextlib.nullcontext() if traced else tracing_context(enabled=False)
        with scope:
            start = time.perf_counter()
            assistant.ask(query, thread_id=thread_id)
            return (time.perf_counter() - start) * 1000

    outer = tracing_context(client=get_cached_client()) if default_client else contextlib.nullcontext()
    with outer:
        for i, query in enumerate(queries[:WARMUP]):
            turn(query, f"warmup-{i}", True)
        traced: list[float] = []
        untraced: list[float] = []
        for i, query in enumerate(queries):
            first_traced = i % 2 == 0 or not paired
            for on in (first_traced, not first_traced)[: 2 if paired else 1]:
                (traced if on else untraced).append(turn(query, f"bench-{i}-{int(on)}", on))
    result: dict[str, Any] = {"turns": len(traced)} | percentiles(traced)
    if paired:
        diffs = [a - b for a, b in zip(traced, untraced, strict=True)]
        result |= {"untraced": percentiles(untraced), "paired_overhead_p50_ms": round(statistics.median(diffs), 3)}
    return result


def child(settings: Settings, queries: list[str], mode: str) -> dict[str, Any]:
    """One mode's turns, in this (child) process: real models, no LLM, nothing written to the state dir."""
    import dataclasses

    from langgraph.checkpoint.memory import InMemorySaver

    from app.core.components import Components
    from app.service.api import Assistant

    plain = settings.model_copy(update={"llm_local": False, "llm_base_url": None})
    if mode == "unreachable-no-pause":
        plain = plain.model_copy(update={"trace_pause": 0.0})
    components = dataclasses.replace(Components.load(plain), feedback=None)
    assistant = Assistant(components, checkpointer=InMemorySaver())
    paired = mode != "off"
    return {"mode": mode} | measure_turns(assistant, queries, paired=paired, default_client=mode == "default-client")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hosted_is_unreachable() -> tuple[bool, str]:
    from langsmith.utils import get_api_url

    url = get_api_url(None)
    try:
        socket.getaddrinfo(urlparse(url).hostname or "", 443)
    except OSError:
        return True, url
    return False, url


def mode_env(mode: str, base: dict[str, str], *, fake_url: str = "") -> dict[str, str]:
    """The child's environment for a mode: the caller's, minus any LangSmith/LangChain tracing variables, plus the
    mode's own."""
    env = {k: v for k, v in base.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    if mode == "off":
        return env | {"LANGSMITH_TRACING": "false"}
    env |= {"LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "labelgate-bench", "LANGSMITH_PROJECT": "labelgate-bench"}
    if mode in ("unreachable", "unreachable-no-pause", "default-client"):
        return env | {"LANGSMITH_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    if mode == "fake":
        return env | {"LANGSMITH_ENDPOINT": fake_url}
    if mode == "hosted":
        return env
    raise ConfigError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")


def _run_child(settings: Settings, queries: list[str], mode: str, env: dict[str, str]) -> dict[str, Any]:
    job = {"settings": settings.model_dump(mode="json", exclude={"review_token"}), "queries": queries}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:  # a file: a chatty child cannot fill a pipe
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.ops.eval.tracebench", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        line = proc.stdout.readline()
        printed = time.monotonic()
        proc.wait(timeout=600)
        ended = time.monotonic()
        errors.seek(0)
        stderr = errors.read()
    if proc.returncode != 0 or not line.strip():
        raise JobError(f"bench trace child ({mode}) failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    warnings = sum(1 for row in stderr.splitlines() if row.startswith("Failed to"))
    return dict(json.loads(line)) | {
        "exit_s": round(ended - printed, 2),
        "process_s": round(ended - started, 1),
        "langsmith_warnings": warnings,
    }


def bench_trace(
    settings: Settings, queries: list[str], *, modes: Sequence[str] = MODES, rounds: int = 2
) -> dict[str, Any]:
    """Every mode `rounds` times, alternating; per mode the median of the rounds' p50/p95 and the worst exit."""
    from app.testing import FakeLangSmith

    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ConfigError(f"unknown modes {unknown}; modes: {', '.join(MODES)}")
    offline, hosted_url = _hosted_is_unreachable()
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    skipped: dict[str, str] = {}
    if "hosted" in modes and not offline:
        skipped["hosted"] = f"{hosted_url} resolves: not an offline machine, so no query is sent there"
    received: list[int] = []
    with FakeLangSmith() as fake:
        for _ in range(rounds):
            for mode in (m for m in modes if m not in skipped):
                before = len(fake.runs())
                results[mode].append(
                    _run_child(settings, queries, mode, mode_env(mode, dict(os.environ), fake_url=fake.url))
                )
                if mode == "fake":
                    received.append(len(fake.runs()) - before)
    report: dict[str, Any] = {"queries": len(queries), "rounds": rounds, "modes": {}, "skipped": skipped}
    for mode, runs in results.items():
        if not runs:
            continue
        report["modes"][mode] = {
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
            "p95_ms": round(statistics.median(r["p95_ms"] for r in runs), 3),
            "exit_s": max(r["exit_s"] for r in runs),
            **(
                {"paired_overhead_p50_ms": round(statistics.median(r["paired_overhead_p50_ms"] for r in runs), 3)}
                if mode != "off"
                else {}
            ),
            "rounds": runs,
        }
    if received:
        report["modes"]["fake"]["runs_received"] = received
    if "off" in report["modes"]:
        off = report["modes"]["off"]["p50_ms"]
        report["overhead_p50_ms"] = {
            mode: round(row["p50_ms"] - off, 3) for mode, row in report["modes"].items() if mode != "off"
        }
    return report


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    [mode] = argv
    job = json.loads(sys.stdin.read())
    result = child(Settings(**job["settings"]), job["queries"], mode)
    print(json.dumps(result), flush=True)  # the parent times exit from this line
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
