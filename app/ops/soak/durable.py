"""Durable reviews (issue 9 item 1): N threads paused at review, a child process resuming them is killed with SIGKILL
part-way, and after the restart nothing is lost or doubled.

1. N threads (1,000; quick: 100) are asked in a scratch home with an unreachable vote margin and no LLM, so every
   one escalates and pauses at review (the real graph, voters and checkpointer: extract is skipped, rules do not
   confirm → review). Thread i's reviewer and labels are fixed in advance.
2. A child process (`python -m app.ops.soak.durable --child …`) resumes them one by one; it is SIGKILLed after a random
   30–50 % of them finished, at a random moment inside the next resume (so possibly mid-turn, between the feedback
   write and the checkpoint).
3. A new Assistant on the same files lists the pending reviews (each must be listed once: all not finished by the
   child, none that it finished), carries on runs the kill stopped between nodes (`Assistant.finish`), resumes the
   rest, then checks every thread: ended, with its reviewer's labels, an answer, and exactly one human feedback row.

Counters: reviews_lost (a thread neither finished, pending nor resumable), feedback_lost / feedback_doubled (human
rows per thread ≠ 1), errors (a listing twice, a wrong label/answer/row, a failed turn).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.errors import LabelgateError
from app.ops.soak import SoakResult
from app.ops.soak.common import dump_settings, load_dumped, scratch_home, soak_queries

START, DONE = "soak-start", "soak-done"


def plan_reviews(thread_ids: list[str], fine_labels: list[str]) -> list[dict[str, Any]]:
    """Each thread's reviewer and label, fixed before the run so the check after the restart knows what to expect."""
    return [
        {"thread_id": tid, "labels": [fine_labels[i % len(fine_labels)]], "reviewer": f"reviewer-{i % 7}"}
        for i, tid in enumerate(thread_ids)
    ]


def _assistant(settings: Settings) -> Any:
    from app.core.components import Components
    from app.service.api import Assistant

    return Assistant(Components.load(settings))


def child(settings_path: Path, plan_path: Path) -> None:
    """Resume every planned thread in order, announcing each start and finish on stdout (the parent counts them)."""
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    with _assistant(load_dumped(settings_path)) as assistant:
        print("soak-ready", flush=True)
        for row in plan:
            print(START, row["thread_id"], flush=True)
            assistant.resume(row["thread_id"], row["labels"], row["reviewer"])
            print(DONE, row["thread_id"], flush=True)


def _run_child_and_kill(settings_path: Path, plan_path: Path, kill_after: int, rng: random.Random) -> dict[str, Any]:
    """Start the child, SIGKILL it inside the resume after `kill_after` finished ones; what it announced."""
    cmd = [sys.executable, "-m", "app.ops.soak.durable", "--child", str(settings_path), str(plan_path)]
    root = str(Path(__file__).resolve().parents[3])  # the child runs this very code, whatever the cwd
    env = os.environ | {
        "LANGSMITH_TRACING": "false",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    log_path = plan_path.with_name("child.log")  # a file, not a pipe: a full stderr pipe would stall the child
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert proc.stdout is not None
    watchdog = threading.Timer(120 + 2.0 * kill_after, proc.kill)  # a stalled child ends the soak, it does not hang
    watchdog.start()
    started: list[str] = []
    done: list[str] = []
    durations: list[float] = []
    t_start = time.monotonic()
    began = 0.0
    killed = False
    for line in proc.stdout:
        kind, _, tid = line.strip().partition(" ")
        if kind == START:
            started.append(tid)
            began = time.monotonic()
            if len(done) >= kill_after:  # inside the next resume: kill at a random moment of a typical one
                typical = sorted(durations)[len(durations) // 2] if durations else 0.01
                time.sleep(rng.uniform(0, typical * 1.2))
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        elif kind == DONE:
            done.append(tid)
            durations.append(time.monotonic() - began)
    proc.wait()
    watchdog.cancel()
    if not killed:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise LabelgateError(f"the resuming child exited (code {proc.returncode}) before the kill ({log_path}): {tail}")
    resume_seconds = sum(durations)
    return {
        "started": started,
        "done": done,
        "child_seconds": round(time.monotonic() - t_start, 2),
        "child_resume_rate": round(len(done) / resume_seconds, 1) if resume_seconds else 0.0,
        "returncode": proc.returncode,
    }


def run(settings: Settings, workdir: Path, *, quick: bool, threads: int | None = None) -> SoakResult:
    """The durable-review soak in a scratch home under `workdir`; `threads` overrides N (tests)."""
    t0 = time.monotonic()
    result = SoakResult("durable")
    workdir.mkdir(parents=True, exist_ok=True)
    home = scratch_home(settings, workdir)
    vote = home.settings.vote.model_copy(update={"min_margin": 1.0})  # unreachable: every query escalates
    s = home.settings.model_copy(update={"vote": vote})
    n = threads or (100 if quick else 1000)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    queries = soak_queries(s, 200)
    ids = [f"durable-{i:05d}" for i in range(n)]

    t = time.monotonic()
    with _assistant(s) as assistant:
        fine = [x.id for x in assistant.components.taxonomy.labels if x.parent]
        plan = plan_reviews(ids, fine)
        not_paused = 0
        for i, tid in enumerate(ids):
            if not assistant.ask(queries[i % len(queries)], tid).pending_review:
                not_paused += 1
    pause_seconds = time.monotonic() - t
    if not_paused:
        result.count("errors", not_paused)
    plan_path = workdir / "plan.json"
    plan_path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    settings_path = dump_settings(s, workdir / "settings.json")
    kill_after = rng.randint(int(0.3 * n), int(0.5 * n))
    child_run = _run_child_and_kill(settings_path, plan_path, kill_after, rng)
    done = set(child_run["done"])
    in_flight = [tid for tid in child_run["started"] if tid not in done]

    t = time.monotonic()
    from app.core.feedback import FeedbackStore

    store = FeedbackStore(s.feedback_db_url)
    rows_at_restart = len(store.rows(sources=["human"]))
    with _assistant(s) as assistant:
        listed = [p.thread_id for p in assistant.pending_reviews()]
        unfinished = assistant.unfinished_runs()
        twice = sum(c - 1 for c in Counter(listed).values() if c > 1)
        finished_listed = len(done & set(listed))
        result.count("errors", twice + finished_listed)
        by_id = {row["thread_id"]: row for row in plan}
        # the child may finish a resume or two after its last announcement, before the kill lands
        ended = {tid for tid in set(ids) - done if _ended_right(assistant, by_id[tid])}
        lost = set(ids) - done - ended - set(listed) - set(unfinished)
        result.count("reviews_lost", len(lost))
        for tid in unfinished:
            try:
                assistant.finish(tid)
            except Exception:  # counted: the soak reports every failure, it does not stop at one
                result.count("errors")
        resumed_after = 0
        for tid in dict.fromkeys(listed):
            row = by_id.get(tid)
            if row is None:
                result.count("errors")
                continue
            try:
                assistant.resume(tid, row["labels"], row["reviewer"])
                resumed_after += 1
            except Exception:
                result.count("errors")
        wrong = _check_threads(assistant, plan)
        result.count("errors", wrong)
    restart_seconds = time.monotonic() - t
    counts = Counter(row.thread_id for row in store.rows(sources=["human"]))
    result.count("feedback_lost", sum(1 for tid in ids if counts[tid] == 0))
    result.count("feedback_doubled", sum(counts[tid] - 1 for tid in ids if counts[tid] > 1))
    result.count("errors", _check_rows(store, plan))
    store.close()

    result.figures = {
        "models": home.models,
        "llm": "none (extract skipped → review; answers from passages)",
        "threads": n,
        "not_paused": not_paused,
        "pause_seconds": round(pause_seconds, 1),
        "killed_after": len(done),
        "killed_mid_resume": bool(in_flight),
        "ended_after_last_announcement": len(ended),
        "feedback_rows_at_restart": rows_at_restart,
        # a resume killed after its feedback write and before its checkpoint: resumed again, its row not doubled
        "killed_between_feedback_and_checkpoint": rows_at_restart - len(done) - len(ended),
        "child_resume_rate_per_s": child_run["child_resume_rate"],
        "child_seconds": child_run["child_seconds"],
        "listed_after_restart": len(listed),
        "listed_twice": twice,
        "finished_but_listed": finished_listed,
        "unfinished_runs_finished": len(unfinished),
        "resumed_after_restart": resumed_after,
        "restart_resume_rate_per_s": round(resumed_after / restart_seconds, 1) if restart_seconds else 0.0,
        "restart_seconds": round(restart_seconds, 1),
    }
    result.seconds = round(time.monotonic() - t0, 1)
    return result


def _ended_right(assistant: Any, row: dict[str, Any]) -> bool:
    """The thread's run is over, with its reviewer's labels and an answer."""
    snapshot = assistant.graph.get_state({"configurable": {"thread_id": row["thread_id"]}})
    values = snapshot.values
    return (
        not snapshot.tasks  # `next` alone misses a step whose writes were saved but whose checkpoint was not
        and values.get("labels") == assistant.components.taxonomy.expand(row["labels"])
        and values.get("label_source") == "human"
        and values.get("review", {}).get("reviewer") == row["reviewer"]
        and bool(values.get("answer"))
    )


def _check_threads(assistant: Any, plan: list[dict[str, Any]]) -> int:
    """Threads that did not end with their reviewer's labels and an answer."""
    return sum(not _ended_right(assistant, row) for row in plan)


def _check_rows(store: Any, plan: list[dict[str, Any]]) -> int:
    """Human feedback rows whose labels or reviewer are not the planned ones, or that belong to no planned thread."""
    by_id = {row["thread_id"]: row for row in plan}
    bad = 0
    for row in store.rows(sources=["human"]):
        want = by_id.get(row.thread_id)
        bad += want is None or row.reviewer != want["reviewer"] or want["labels"][0] not in row.labels
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description="durable-review soak: the resuming child process")
    parser.add_argument("--child", nargs=2, metavar=("SETTINGS_JSON", "PLAN_JSON"), required=True)
    args = parser.parse_args()
    child(Path(args.child[0]), Path(args.child[1]))


if __name__ == "__main__":
    main()
