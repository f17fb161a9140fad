"""The checkpointer factory: chosen by settings alone (SQLite file or PostgreSQL), Postgres set up once under a lock,
connection failures as CheckpointerError with the fix (never a stack trace or a hang), resources closed."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

import pytest

from app.core.checkpoints import close_checkpointer, make_checkpointer, postgres_checkpointer
from app.core.config import Settings, load_settings
from app.core.errors import CheckpointerError, ConfigError


def test_one_database_url_serves_checkpoints_and_the_feedback_store(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABELGATE_DATABASE_URL", "postgres://lg:pw@db.internal:5433/labelgate")
    settings = load_settings(home=tmp_path)
    assert settings.database_url == "postgresql://lg:pw@db.internal:5433/labelgate"  # what libpq / PostgresSaver read
    assert settings.feedback_db_url == "postgresql+psycopg://lg:pw@db.internal:5433/labelgate"  # what SQLAlchemy reads
    monkeypatch.setenv("LABELGATE_FEEDBACK_URL", "sqlite:///elsewhere.sqlite")
    assert load_settings(home=tmp_path).feedback_db_url == "sqlite:///elsewhere.sqlite"  # an explicit URL wins
    monkeypatch.setenv("LABELGATE_DATABASE_URL", "  ")
    monkeypatch.delenv("LABELGATE_FEEDBACK_URL")
    assert load_settings(home=tmp_path).feedback_db_url == f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    monkeypatch.setenv("LABELGATE_DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        load_settings(home=tmp_path)


def test_the_settings_alone_choose_the_saver(store_settings: Settings) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    saver = make_checkpointer(store_settings)
    try:
        if store_settings.database_url is None:
            assert isinstance(saver, SqliteSaver) and store_settings.checkpoint_db.is_file()
        else:
            from langgraph.checkpoint.postgres import PostgresSaver

            assert isinstance(saver, PostgresSaver) and not store_settings.checkpoint_db.exists()
            assert list(saver.list(None)) == []  # the tables exist: set up on creation
    finally:
        close_checkpointer(saver)


def test_postgres_setup_runs_once_when_replicas_start_together(postgres_url: str) -> None:
    import psycopg

    savers, errors = [], []

    def start() -> None:
        try:
            savers.append(postgres_checkpointer(postgres_url))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(savers) == 3
    with psycopg.connect(postgres_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")]
    assert versions == list(range(len(savers[0].MIGRATIONS)))  # each migration once
    for saver in savers:
        close_checkpointer(saver)
    assert all(saver.conn.closed for saver in savers)  # the pools are closed


def test_an_unreachable_postgres_is_a_clear_error_within_the_timeout() -> None:
    pytest.importorskip("psycopg")
    from app.ops.testservers import free_port

    url = f"postgresql://lg:s3cret@127.0.0.1:{free_port()}/labelgate"
    started = time.perf_counter()
    with pytest.raises(CheckpointerError, match=r"cannot use PostgreSQL at postgresql://lg:\*\*\*@127\.0\.0\.1") as err:
        postgres_checkpointer(url, timeout=2)
    assert time.perf_counter() - started < 3
    assert "LABELGATE_DATABASE_URL" in str(err.value) and "s3cret" not in str(err.value)


def test_a_database_lost_while_serving_is_a_checkpointer_error(components, postgres_server: str) -> None:  # type: ignore[no-untyped-def]
    from app.ops.testservers import create_database, drop_database
    from app.service.api import Assistant

    url = create_database(postgres_server)
    settings = components.settings.model_copy(update={"database_url": url, "database_timeout": 1.0})
    with Assistant(dataclasses.replace(components, settings=settings)) as assistant:
        assert assistant.ask("我的手机屏幕裂了，保修可以换吗？").decision == "auto"
        drop_database(postgres_server, url)  # closes our connections; reconnecting fails: the database is gone
        started = time.perf_counter()
        with pytest.raises(CheckpointerError, match="start the server or fix LABELGATE_DATABASE_URL"):
            assistant.ask("我的手机屏幕裂了，保修可以换吗？")
        assert time.perf_counter() - started < 5


def test_postgres_without_its_extra_names_the_pip_install(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.core.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.postgres", None)  # as if the package were not installed
    settings = Settings(home=tmp_path, database_url="postgresql://x@127.0.0.1:1/x")
    with pytest.raises(MissingExtraError, match=r"pip install 'labelgate\[postgres\]'"):
        make_checkpointer(settings)


def test_an_unwritable_home_is_a_checkpointer_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "home").write_text("a file, not a directory")
    with pytest.raises(CheckpointerError, match="LABELGATE_HOME"):
        make_checkpointer(Settings(home=tmp_path / "home"))


def test_an_assistant_closes_only_the_checkpointer_it_opened(components) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from app.core.checkpoints import sqlite_checkpointer
    from app.service.api import Assistant

    with Assistant(components) as assistant:
        own = assistant.checkpointer
    with pytest.raises(sqlite3.ProgrammingError):
        own.conn.execute("SELECT 1")  # type: ignore[attr-defined]
    passed = sqlite_checkpointer(components.settings)
    with Assistant(components, checkpointer=passed):
        pass
    passed.conn.execute("SELECT 1")  # type: ignore[attr-defined]  # still open: the caller owns it
    close_checkpointer(passed)
