"""The decision log store: numbered migrations, the background writer, reading a window, failures that stay quiet."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.decisionlog import MIGRATIONS, DecisionLog
from app.core.errors import InputError
from tests.unit.app.ops.monitor.test_monitor_report import log_row


def test_migrations_run_once_in_order_and_catch_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log' / 'decisions.sqlite'}"
    store = DecisionLog(url)
    assert store.schema_version() == len(MIGRATIONS) == 2 and store.migrate() == []
    indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("decisions")}
    assert {"ix_decisions_created", "ix_decisions_thread"} <= indexes
    with store.engine.begin() as conn:  # a store made by a version that knew only migration 1
        conn.execute(sa.text("DROP INDEX ix_decisions_created"))
        conn.execute(sa.text("DROP INDEX ix_decisions_thread"))
        conn.execute(sa.text("DELETE FROM decision_log_migrations WHERE version = 2"))
    store.close()
    again = DecisionLog(url)
    assert again.schema_version() == 2
    assert {"ix_decisions_created"} <= {ix["name"] for ix in sa.inspect(again.engine).get_indexes("decisions")}
    again.close()


def test_rows_round_trip_and_read_a_window(tmp_path: Path) -> None:
    store = DecisionLog(f"sqlite:///{tmp_path / 'd.sqlite'}")
    for i in range(5):
        store.record(log_row(1000.0 + i, f"t{i}", "屏幕", "auto" if i % 2 else "review"))
    assert store.flush() and store.written == 5
    rows = store.rows(since=1001.0, until=1004.0)
    assert [r.thread_id for r in rows] == ["t1", "t2", "t3"]
    assert rows[0].labels == ["售后", "屏幕"] and rows[0].votes["A"]["p"] == 0.9 and rows[1].pending_review is True
    assert isinstance(rows[0].node_ms, dict) and rows[0].error is None
    store.close()
    assert DecisionLog(f"sqlite:///{tmp_path / 'd.sqlite'}", create=False).rows(since=0, until=1e12)[4].id == 5


def test_two_writers_on_one_file(tmp_path: Path) -> None:
    """A serving process and `langgraph dev` may log into the same SQLite file at once (WAL, busy timeout)."""
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    stores = [DecisionLog(url), DecisionLog(url)]

    def burst(store: DecisionLog, who: str) -> None:
        for i in range(100):
            store.record(log_row(float(i), f"{who}-{i}", "电池", "auto"))

    threads = [threading.Thread(target=burst, args=(s, str(n))) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(s.flush() for s in stores) and sum(s.dropped for s in stores) == 0
    assert len(stores[0].rows(since=0, until=1e12)) == 200
    for store in stores:
        store.close()


def test_a_failed_write_or_a_full_queue_loses_rows_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    store = DecisionLog(f"sqlite:///{tmp_path / 'd.sqlite'}", max_queued=3)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE decisions"))
    with caplog.at_level(logging.WARNING, logger="app.core.decisionlog"):
        store.record(log_row(1.0, "x", "屏幕", "auto"))
        assert store.flush()
        assert store.dropped == 1 and "no such table" in caplog.text

        inside, release = threading.Event(), threading.Event()
        original = store._insert

        def stuck(batch):  # type: ignore[no-untyped-def]
            inside.set()
            release.wait(5)
            original(batch)

        store._insert = stuck  # type: ignore[method-assign]
        store.record(log_row(0.0, "first", "屏幕", "auto"))
        assert inside.wait(5)  # the writer is stuck on that row: the queue (3) fills, the rest is dropped
        for i in range(20):
            store.record(log_row(float(i), f"y{i}", "屏幕", "auto"))
        # record never blocks: a record that waited for room would wait until the writer is released, and nothing
        # would be dropped; here 17 of the 20 are dropped while the writer is still stuck on its first row
        assert store.dropped == 1 + 20 - 3 and not release.is_set() and store.written == 0
        assert "queue full" in caplog.text and "INSERT" not in caplog.text  # no SQL or query text in the log
        release.set()
    store.close()


def test_bad_urls_and_missing_logs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be opened"):
        DecisionLog("nosuchdialect://x")
    with pytest.raises(InputError, match="no decision log at"):
        DecisionLog(f"sqlite:///{tmp_path / 'none.sqlite'}", create=False)
    assert not (tmp_path / "none.sqlite").exists()
    memory = DecisionLog("sqlite:///:memory:")  # the writer thread and the reader share the one in-memory db
    memory.record(log_row(0.5, "m", "电池", "auto"))
    assert memory.flush() and [r.thread_id for r in memory.rows(since=0, until=1)] == ["m"] and memory.dropped == 0
    memory.close()


def test_the_writer_inserts_rows_one_by_one_and_in_a_batch(tmp_path: Path) -> None:
    """The two ways the writer thread inserts (its CPU cost per row is `labelgate bench log`'s figure)."""
    store = DecisionLog(f"sqlite:///{tmp_path / 'd.sqlite'}")
    rows = [log_row(float(i), f"t{i}", "屏幕", "auto") for i in range(200)]
    for row in rows[:100]:
        store._insert([row])
    store._insert(rows[100:])
    assert store.written == 200 and store.dropped == 0
    assert [r.thread_id for r in store.rows(since=0, until=1e12)] == [f"t{i}" for i in range(200)]
    store.close()


def test_the_log_lives_in_the_settings_database_on_every_backend(store_settings) -> None:  # type: ignore[no-untyped-def]
    """SQLite in home by default, the LABELGATE_DATABASE_URL database when set: same migrations, rows and window."""
    url = store_settings.decision_log_db_url
    assert url.startswith("postgresql+psycopg://" if store_settings.database_url else "sqlite:///")
    store = DecisionLog(url)
    assert store.schema_version() == len(MIGRATIONS)
    for i in range(4):
        store.record(log_row(2000.0 + i, f"pg{i}", "电池", "auto"))
    assert store.flush() and store.written == 4
    assert [r.thread_id for r in store.rows(since=2001.0, until=2003.0)] == ["pg1", "pg2"]
    store.close()
    again = DecisionLog(url, create=False)  # another process opens the log as it is
    assert again.schema_version() == len(MIGRATIONS) and len(again.rows(since=0, until=1e12)) == 4
    again.close()
