"""The checkpointer behind every review pause: a SQLite file in the state dir, or PostgreSQL when
LABELGATE_DATABASE_URL is set (several processes or machines then share the pending reviews)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from app.core.config import Settings
from app.core.errors import CheckpointerError, LabelgateError, redact_url, store_failure
from app.core.extras import require

log = logging.getLogger(__name__)
POOL_MAX = 4  # PostgresSaver serialises its queries behind one lock; more connections only cover reconnects
LOCK_WAIT = 5.0  # seconds SQLite waits for another process's write lock on the checkpoint file
SETUP_LOCK = 0x6C61_6265_6C67  # pg_advisory_lock key: two processes starting at once run the migrations once


def make_checkpointer(settings: Settings) -> BaseCheckpointSaver[Any]:
    """PostgresSaver (tables set up) when LABELGATE_DATABASE_URL is set, else the SQLite file in the state dir.
    Close it with `close_checkpointer` (Assistant.close does)."""
    if settings.database_url:
        return postgres_checkpointer(settings.database_url, timeout=settings.database_timeout)
    return sqlite_checkpointer(settings)


SQLITE_FIXES = {  # what to do about a checkpoint-file error, by app.core.errors.store_failure's kind
    "locked": (
        "another process holds its write lock (a second labelgate on the same LABELGATE_HOME, or a tool with it "
        "open): retry; to serve from several processes set LABELGATE_DATABASE_URL (PostgreSQL)"
    ),
    "read_only": "make the file and its directory writable (permissions, a read-only mount) or set LABELGATE_HOME",
    "full": "the disk that holds it is full: free space, then retry",
    "other": "`labelgate doctor` checks it; move it away only if it is corrupt (its pending reviews are lost)",
}


def sqlite_error(path: Path, exc: Exception) -> CheckpointerError:
    """What went wrong with the checkpoint file and what to do; the turn that met it saved nothing, so retrying it
    after the fix is safe (a review stays pending)."""
    reason, trouble = store_failure(exc)
    return CheckpointerError(f"checkpoint file {path}: {reason} — {SQLITE_FIXES[trouble]}")


def sqlite_checkpointer(settings: Settings) -> BaseCheckpointSaver[Any]:
    """The default checkpointer: a SQLite file in the state dir; every review pause survives restarts. SQLite waits
    up to 5 s for a lock; a locked, read-only or full file is then a CheckpointerError that says what to do."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = settings.checkpoint_db

    class SqliteCheckpointer(SqliteSaver):
        """SqliteSaver whose SQLite errors are CheckpointerErrors that say what to do. After a write lock timed out,
        the writes queued behind it wait 50 ms, not 5 s (for a second): a turn fails in ~5 s, not 5 s a step."""

        locked_until = 0.0

        @contextlib.contextmanager
        def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
            with self.lock:
                hurry = transaction and time.monotonic() < self.locked_until
                try:
                    self.conn.execute(f"PRAGMA busy_timeout = {50 if hurry else int(LOCK_WAIT * 1000)}")
                    self.setup()
                    cur = self.conn.cursor()
                    try:
                        yield cur
                    finally:
                        if transaction:
                            self.conn.commit()
                        cur.close()
                except sqlite3.Error as exc:
                    if transaction and store_failure(exc)[1] == "locked":
                        self.locked_until = time.monotonic() + 1.0
                    raise sqlite_error(path, exc) from exc

    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        saver = SqliteCheckpointer(sqlite3.connect(path, check_same_thread=False, timeout=LOCK_WAIT))
        with saver.cursor() as cur:  # tables made and the file proven writable now: it fails at startup, not later
            version = int(cur.execute("PRAGMA user_version").fetchone()[0])
            cur.execute(f"PRAGMA user_version = {version}")
        return saver
    except OSError as exc:
        raise CheckpointerError(
            f"cannot open the checkpoint file {path}: {exc} (fix the permissions or set LABELGATE_HOME)"
        ) from exc
    except sqlite3.Error as exc:
        raise sqlite_error(path, exc) from exc


def close_checkpointer(saver: BaseCheckpointSaver[Any]) -> None:
    """Close the connection (SQLite) or connection pool (Postgres) a saver from this module holds."""
    conn = getattr(saver, "conn", None)
    if conn is not None and hasattr(conn, "close"):
        conn.close()


def _connect_hint(url: str, exc: Exception) -> CheckpointerError:
    return CheckpointerError(
        f"cannot use PostgreSQL at {redact_url(url)}: {store_failure(exc)[0]} — start the server or fix "
        "LABELGATE_DATABASE_URL (unset it to keep checkpoints in the SQLite file)"
    )


def _connect_kwargs(timeout: float) -> dict[str, Any]:
    from psycopg.rows import dict_row

    return {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
        "connect_timeout": max(1, round(timeout)),
    }


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """psycopg's connection errors (server gone, pool exhausted) become CheckpointerError with the fix."""
    import psycopg

    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise _connect_hint(url, exc) from exc


def _postgres_saver_class() -> type[Any]:
    require("psycopg", "postgres", package="'psycopg[binary]' psycopg-pool")
    require("psycopg_pool", "postgres", package="psycopg-pool")
    postgres = require("langgraph.checkpoint.postgres", "postgres", package="langgraph-checkpoint-postgres")
    base: type[Any] = postgres.PostgresSaver

    class PostgresCheckpointer(base):  # type: ignore[valid-type,misc]
        """PostgresSaver whose connection failures are CheckpointerErrors that say what to fix."""

        url = ""

        def get_tuple(self, config: Any) -> Any:
            with _translated(self.url):
                return super().get_tuple(config)

        def list(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            with _translated(self.url):
                yield from super().list(*args, **kwargs)

        def put(self, *args: Any, **kwargs: Any) -> Any:
            with _translated(self.url):
                return super().put(*args, **kwargs)

        def put_writes(self, *args: Any, **kwargs: Any) -> None:
            with _translated(self.url):
                super().put_writes(*args, **kwargs)

        def delete_thread(self, thread_id: str) -> None:
            with _translated(self.url):
                super().delete_thread(thread_id)

    return PostgresCheckpointer


def _advisory_lock(conn: Any, key: int, *, wait: float) -> None:
    """Take a session advisory lock by polling: a session blocked in pg_advisory_lock keeps a transaction open, and
    the migrations' CREATE INDEX CONCURRENTLY waits for it — a deadlock between two replicas starting together."""
    deadline = time.monotonic() + wait
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]:
        if time.monotonic() > deadline:
            raise CheckpointerError(f"another process has been setting up the checkpoint tables for over {wait:.0f} s")
        time.sleep(0.1)


def postgres_checkpointer(url: str, *, timeout: float = 5.0) -> BaseCheckpointSaver[Any]:
    """A PostgresSaver over a small connection pool; the tables are created or migrated first, under an advisory lock
    (replicas starting together migrate once). Unreachable server, bad credentials → CheckpointerError."""
    saver_class = _postgres_saver_class()
    import psycopg
    from psycopg_pool import ConnectionPool

    kwargs = _connect_kwargs(timeout)
    try:
        with psycopg.connect(url, **kwargs) as conn:
            _advisory_lock(conn, SETUP_LOCK, wait=max(60.0, timeout))
            saver_class(conn).setup()  # the lock ends with the connection
    except psycopg.Error as exc:
        raise _connect_hint(url, exc) from exc
    pool: Any = ConnectionPool(
        url,
        kwargs=kwargs,
        min_size=1,
        max_size=POOL_MAX,
        timeout=timeout,
        check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not used
        name="labelgate-checkpoints",
        open=True,
    )
    saver = saver_class(pool)
    saver.url = url
    return saver  # type: ignore[no-any-return]


def checkpoint_status(settings: Settings) -> tuple[str, str, str]:
    """(status, detail, fix) of the checkpoint store for `labelgate doctor`, without creating anything."""
    if settings.database_url:
        return _postgres_status(settings.database_url, settings.database_timeout)
    return _sqlite_status(settings.checkpoint_db)


def _writable_dir(path: Path) -> Path | None:
    """The nearest existing ancestor of path when it is writable (mkdir would succeed), else None."""
    for parent in (path, *path.parents):
        if parent.exists():
            return parent if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK) else None
    return None


def _sqlite_status(path: Path) -> tuple[str, str, str]:
    fix = "fix the permissions of LABELGATE_HOME or point it at a writable directory"
    if not path.exists():
        if _writable_dir(path.parent) is None:
            return "fail", f"{path.parent} is not writable: the checkpoint file cannot be created", fix
        return "ok", f"SQLite {path} (created on the first question)", ""
    if not os.access(path, os.R_OK | os.W_OK):
        return "fail", f"{path} is not readable and writable", fix
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            threads = 0
            if "checkpoints" in tables:
                threads = conn.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
    except sqlite3.Error as exc:
        return "fail", f"{path} is not a usable SQLite file: {exc}", f"move {path} away (its pending reviews are lost)"
    return "ok", f"SQLite {path}: {threads} threads", ""


def _postgres_status(url: str, timeout: float) -> tuple[str, str, str]:
    try:
        saver_class = _postgres_saver_class()
    except LabelgateError as exc:
        return "fail", str(exc), "pip install 'labelgate[postgres]'"
    import psycopg

    where = redact_url(url)
    fix = "start PostgreSQL or fix LABELGATE_DATABASE_URL (unset = the SQLite file)"
    latest = len(saver_class.MIGRATIONS) - 1
    try:
        with psycopg.connect(url, **_connect_kwargs(timeout)) as conn:
            try:
                row = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()
            except psycopg.errors.UndefinedTable:  # a first run, like a SQLite file not made yet
                return "ok", f"PostgreSQL {where}: reachable; the first Assistant to start creates the tables", ""
            version = -1 if row is None or row["v"] is None else int(row["v"])
            if version < latest:
                detail = f"PostgreSQL {where}: schema v{version}; the next Assistant to start migrates it to v{latest}"
                return "ok", detail, ""
            threads = conn.execute("SELECT count(DISTINCT thread_id) AS n FROM checkpoints").fetchone()
    except psycopg.Error as exc:
        return "fail", str(_connect_hint(url, exc)), fix
    return "ok", f"PostgreSQL {where}: set up (schema v{version}), {threads['n'] if threads else 0} threads", ""
