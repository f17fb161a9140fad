"""`labelgate report` over a decision log built by a fixture: a week of traffic whose last day shifts its label mix
and escalation rate. The numbers, the alarms, the escaped HTML and the CLI."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.core.config import MonitorSettings, Settings
from app.core.decisionlog import DecisionLog
from app.core.errors import InputError
from app.ops.monitor.report import build_report, group_turns, write_report

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>屏幕'
PARENT = {"屏幕": "售后", "保修政策": "售后", "电池": "售后", "活动优惠": "销售", "以旧换新": "销售", "其他": "其他"}
BASELINE_MIX = {"屏幕": 30, "保修政策": 20, "电池": 20, "活动优惠": 15, "以旧换新": 10, "其他": 5}  # per 100 queries
RECENT_MIX = {"屏幕": 15, "保修政策": 10, "电池": 10, "活动优惠": 25, "以旧换新": 35, "其他": 5}


def log_row(created: float, thread: str, label: str | None, outcome: str, **extra: Any) -> dict[str, Any]:
    """One decision-log row as the recorder writes it; outcome: auto | confirmed | review | error | resume."""
    labels = [PARENT[label], label] if label and PARENT[label] != label else [label] if label else []
    auto = outcome == "auto"
    row = {
        "created": created,
        "run_id": f"run-{thread}-{outcome}",
        "thread_id": thread,
        "kind": "resume" if outcome == "resume" else "ask",
        "user": None,
        "query": f"{label or ''}的问题 {thread}",
        "query_chars": 12,
        "labels": labels if outcome != "review" else [],
        "leaf_labels": [label] if label and outcome != "review" else [],
        "label_source": {"auto": "voters", "confirmed": "llm+rules", "resume": "human"}.get(outcome, ""),
        "decision": "" if outcome == "error" else "auto" if auto else "escalate",
        "route": {"auto": "auto", "confirmed": "confirmed", "review": "review", "resume": "reviewed"}.get(outcome, ""),
        "reasons": ["agree"] if auto else ["A:low_margin", "fine_disagree"],
        "confidence": None if outcome == "error" else 0.95 if auto else 0.45,
        "votes": {"A": {"top": label, "p": 0.9, "accepted": [label]}, "B": {"top": label, "p": 0.8, "accepted": []}},
        "disagree": not auto,
        "pending_review": outcome == "review",
        "review_mode": "before_answer" if outcome in ("review", "resume") else None,
        "reviewer": "alice" if outcome == "resume" else None,
        "filter_stage": "fine",
        "widened": False,
        "answer_kind": "" if outcome == "review" else "passages",
        "doc_ids": [],
        "latency_ms": 20.0 + (created % 7),
        "node_ms": {"classify": 4.0, "retrieve": 10.0},
        "model_versions": {"A": "v1", "B": "v1"},
        "error": "RuntimeError: kb down" if outcome == "error" else None,
    }
    return row | extra


def traffic(
    *, days: int = 7, per_day: int = 40, recent_per_day: int = 120, shift: bool = True, now: float = NOW
) -> list[dict[str, Any]]:
    """`days - 1` baseline days and one recent day. Baseline: 30 % escalated; recent (with shift): 55 % and the
    RECENT_MIX labels. Every second escalation goes to a person, whose review is resolved an hour later."""
    rng = random.Random(7)
    rows = []
    windows = [(now - (days - d) * DAY, per_day, BASELINE_MIX, 30) for d in range(days - 1)]
    windows.append((now - DAY, recent_per_day, RECENT_MIX if shift else BASELINE_MIX, 55 if shift else 30))
    for w, (start, count, mix, escalated_pct) in enumerate(windows):
        labels = [label for label, n in mix.items() for _ in range(n * count // 100)]
        rng.shuffle(labels)
        order = list(range(count))
        rng.shuffle(order)
        escalated = order[: escalated_pct * count // 100]
        to_person = set(escalated[::2])
        for i, label in enumerate(labels):
            created = start + (i + 0.5) * (DAY - 7200) / count
            thread = f"w{w}-{i}"
            outcome = "auto" if i not in escalated else "review" if i in to_person else "confirmed"
            rows.append(log_row(created, thread, label, outcome, disagree=outcome != "auto" and i % 3 > 0))
            if outcome == "review":
                rows.append(log_row(created + 3600, thread, label, "resume"))
    return rows


def fill(store: DecisionLog, rows: list[dict[str, Any]]) -> DecisionLog:
    for row in rows:
        store.record(row)
    assert store.flush()
    return store


@pytest.fixture()
def store(settings: Settings):  # type: ignore[no-untyped-def]
    log = DecisionLog(settings.decision_log_db_url)
    yield log
    log.close()


def shifted_log(store: DecisionLog) -> DecisionLog:
    rows = traffic()
    rows.append(log_row(NOW - 3 * DAY, "slow-1", "屏幕", "auto", query=HOSTILE, latency_ms=4321.0))
    rows.append(log_row(NOW - 2 * DAY, "boom", None, "error", latency_ms=3.0))
    rows.append(log_row(NOW - 6.5 * DAY, "before-range", "电池", "resume"))  # its ask is older than --since 7d
    return fill(store, rows)


def report(store: DecisionLog, **monitor: Any) -> dict[str, Any]:
    rows = store.rows(since=NOW - 7 * DAY, until=NOW)
    return build_report(rows, since=NOW - 7 * DAY, until=NOW, monitor=MonitorSettings(**monitor), tz=UTC)


def test_the_numbers_and_both_alarms_of_a_shifted_week(store: DecisionLog) -> None:
    out = report(shifted_log(store))
    totals = out["totals"]
    assert totals["queries"] == 6 * 40 + 120 + 2 and totals["error"] == 1
    assert totals["resumes"] == 6 * 6 + 33 + 1 and totals["reviews_resolved"] == totals["resumes"]
    assert totals["pending_reviews"] == 0  # every review in the fixture was resolved
    assert totals["escalation_rate"] == pytest.approx((6 * 12 + 66) / (6 * 40 + 120 + 1))
    assert out["range"]["bucket_seconds"] == 6 * 3600 and len(out["buckets"]) == 28
    assert out["range"]["recent_since"] == "2026-03-09T12:00:00+00:00"
    assert sum(b["queries"] for b in out["buckets"]) == totals["queries"]
    assert sum(b["resumes"] for b in out["buckets"]) == totals["resumes"]

    windows = out["windows"]
    assert windows["baseline"]["escalation_rate"] == pytest.approx(
        72 / 241
    )  # + the fast auto row with the hostile query
    assert windows["recent"]["escalation_rate"] == pytest.approx(66 / 120)
    assert windows["recent"]["label_shares"]["以旧换新"] == pytest.approx(0.35)
    top = windows["label_movers"][0]
    assert top["label"] == "以旧换新" and top["delta"] == pytest.approx(0.35 - 24 / 241)
    alarms = {a["name"]: a for a in out["alarms"]}
    assert alarms["label_shift"]["status"] == "alarm" and alarms["label_shift"]["value"] > 0.2
    assert alarms["label_shift"]["p_value"] < 0.01
    assert alarms["escalation_rate"]["status"] == "alarm"
    assert alarms["escalation_rate"]["value"] == pytest.approx(66 / 120 - 72 / 241)
    assert (alarms["escalation_rate"]["baseline_n"], alarms["escalation_rate"]["recent_n"]) == (241, 120)

    slowest = out["slowest"]
    assert slowest[0]["query"] == HOSTILE and slowest[0]["latency_ms"] == 4321.0
    assert slowest[0]["slowest_node"] == "retrieve" and len(slowest) == 10
    assert [s["latency_ms"] for s in slowest] == sorted((s["latency_ms"] for s in slowest), reverse=True)
    json.dumps(out)  # the --json output


def test_no_shift_is_ok_and_a_thin_log_is_not_enough_data(store: DecisionLog) -> None:
    fill(store, traffic(shift=False))
    alarms = {a["name"]: a["status"] for a in report(store)["alarms"]}
    assert alarms == {"label_shift": "ok", "escalation_rate": "ok"}
    thin = report(store, min_queries=500)["alarms"]
    assert {a["status"] for a in thin} == {"insufficient_data"} and "needs 500 queries" in thin[0]["detail"]
    loose = {a["name"]: a["status"] for a in report(store, max_escalation_delta=0.0, alarm_p=1.0)["alarms"]}
    assert loose["escalation_rate"] == "ok"  # the same rate in both windows moved by 0, not past a bound of 0


def test_bounds_from_settings_decide_the_alarms(store: DecisionLog) -> None:
    shifted_log(store)
    alarms = {a["name"]: a["status"] for a in report(store, max_label_shift=0.9, max_escalation_delta=0.5)["alarms"]}
    assert alarms == {"label_shift": "ok", "escalation_rate": "ok"}


def test_the_html_is_self_contained_and_escapes_queries(store: DecisionLog) -> None:
    from app.ops.monitor.page import report_html

    page = report_html(report(shifted_log(store)))
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert html_escaped(HOSTILE) in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert page.count("<svg") == 6 and 'data-status="alarm"' in page and "以旧换新" in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_turns_pair_resumes_with_their_ask(store: DecisionLog) -> None:
    shifted_log(store)
    turns, orphans = group_turns(store.rows(since=NOW - 7 * DAY, until=NOW))
    assert [o.thread_id for o in orphans] == ["before-range"]
    reviewed = [t for t in turns if t.outcome == "review"]
    assert reviewed and all(t.resumes == 1 and t.final.kind == "resume" for t in reviewed)
    assert all(t.mix_labels == list(t.final.leaf_labels) for t in reviewed)


def test_write_report_errors(settings: Settings, store: DecisionLog, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no queries since"):
        write_report(settings, since="7d", out=None, now=NOW, tz=UTC)
    with pytest.raises(InputError, match="duration like 7d"):
        write_report(settings, since="last tuesday", out=None, now=NOW, tz=UTC)
    missing = settings.model_copy(update={"home": tmp_path / "nowhere"})
    with pytest.raises(InputError, match="no decision log"):
        write_report(missing, since="7d", out=None, now=NOW, tz=UTC)
    assert not (tmp_path / "nowhere").exists()  # reading never creates a log


def test_cli_report_writes_html_and_json(settings: Settings, store: DecisionLog, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from app.cli import app

    fill(store, traffic(days=3, per_day=60, recent_per_day=60, now=time.time()))
    monkeypatch.setenv("LABELGATE_HOME", str(settings.home))
    out = tmp_path / "r" / "report.html"
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--since", "30d", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    assert (
        numbers["totals"]["queries"] == 180
        and numbers["html"] == str(out)
        and out.read_text("utf-8").startswith("<!doctype")
    )
    result = runner.invoke(app, ["report", "--since", "30d", "--out", str(out)])
    assert result.exit_code == 0 and "queries 180" in result.output and "label_shift" in result.output
    bad = runner.invoke(app, ["report", "--since", "soon", "--out", str(out)])
    assert bad.exit_code == 2 and "error: --since must be a duration" in bad.output
    empty = runner.invoke(app, ["report", "--since", "1s", "--out", str(out)])
    assert empty.exit_code == 2 and "no queries since" in empty.output
