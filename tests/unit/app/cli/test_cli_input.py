"""Bad input at the CLI (issue 9, item 3): a clear `error: …` on stderr and exit code 2, nothing changed; broken bytes
in a query are replaced, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.app.cli.test_cli import env, run

__all__ = ["env"]  # the CLI's tiny data dir and LABELGATE_* settings (a fixture)


def test_bad_cli_input_exits_2_with_a_message(env: Path) -> None:
    assert run("train")[0] == 0 and run("index")[0] == 0
    for query in ("", "   ", "\t\n", "\x00\x01\u200b"):
        code, out = run("ask", query)
        assert code == 2 and "error: query is empty" in out, (query, out)
    code, out = run("ask", b"\xff\xfe\xe5\xb1\x8f".decode("utf-8", "surrogateescape") + "屏幕裂了", "--json")
    assert code == 0, out  # the shell handed over undecodable bytes: replaced and flagged
    answer = json.loads(out)
    assert "invalid_characters_replaced" in answer["reasons"] and answer["query"].startswith("\ufffd")

    bad = env / "bad.jsonl"
    bad.write_bytes(b'{"id": "X", "text": "\xff\xfe", "labels": ["\xe5\xb1"]}\n')
    code, out = run("index", "--docs", str(bad))
    assert code == 2 and "bad.jsonl:1: not UTF-8" in out
    code, out = run("index", "--docs", str(env / "missing.jsonl"))
    assert code == 2 and "file not found" in out
    assert json.loads(run("index")[1])["upserted"] == 0  # the refused files changed nothing

    code, out = run("ask", "你们宣传的和实际不一样", "--json")  # 投诉: blocks for a person
    paused = json.loads(out)
    assert code == 0 and paused["pending_review"], out
    thread = paused["thread_id"]
    waiting = [row["thread_id"] for row in json.loads(run("review", "list", "--json")[1])]
    assert thread in waiting
    for labels, reviewer, message in (
        ("ADMIN", "alice", "unknown labels ['ADMIN']"),
        ("屏幕,不存在", "alice", "unknown labels ['不存在']"),
        ("", "alice", "'labels' must be a non-empty list"),
        ("虚假宣传", " ", "a reviewer identity is required"),
    ):
        code, out = run("review", "resolve", thread, "--labels", labels, "--reviewer", reviewer)
        assert code == 2 and f"error: {message}" in out, (labels, out)
    code, out = run("review", "resolve", "no-such-thread", "--labels", "屏幕", "--reviewer", "alice")
    assert code == 2 and "no pending review" in out
    code, out = run("review", "list", "--json")
    assert [row["thread_id"] for row in json.loads(out)] == waiting  # still waiting, nothing lost
    assert run("review", "resolve", thread, "--labels", "虚假宣传", "--reviewer", "alice")[0] == 0
