"""The decision log: one row per graph run (a query's first run and each resume), for `labelgate report`.

SQLAlchemy Core like the feedback store, so `LABELGATE_DECISION_LOG_URL=postgresql+psycopg://...` works as well as
the default SQLite file. Rows are written by one background thread: a slow or broken store costs a query nothing
but a warning in the log.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.core.errors import InputError, redact_url

log = logging.getLogger(__name__)
_meta = sa.MetaData()


def _columns_v1() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created", sa.Float, nullable=False),  # epoch seconds when the run started
        sa.Column("run_id", sa.String(64), nullable=False),  # the root run id (LangSmith trace id when tracing)
        sa.Column("thread_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),  # ask | resume
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("query", sa.Text, nullable=False),  # capped at monitor.query_chars
        sa.Column("query_chars", sa.Integer, nullable=False),  # the query's length before the cap
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("leaf_labels", sa.JSON, nullable=False),  # fine labels (+ coarse ones without children): the mix
        sa.Column("label_source", sa.String(20), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),  # auto | escalate | "" (failed before vote)
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("votes", sa.JSON, nullable=False),  # {voter: {top, p, accepted}}
        sa.Column("disagree", sa.Boolean, nullable=False),  # the voters disagreed (coarse or fine)
        sa.Column("pending_review", sa.Boolean, nullable=False),  # the run ended paused at review
        sa.Column("review_mode", sa.String(20), nullable=True),  # before_answer | after_answer
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("filter_stage", sa.String(20), nullable=True),  # fine | coarse | none (where retrieval started)
        sa.Column("widened", sa.Boolean, nullable=False),
        sa.Column("answer_kind", sa.String(20), nullable=False),
        sa.Column("doc_ids", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("node_ms", sa.JSON, nullable=False),  # {node: ms} for the nodes this run executed
        sa.Column("model_versions", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    ]


DECISIONS = sa.Table("decisions", _meta, *_columns_v1())
MIGRATIONS_TABLE = sa.Table(
    "decision_log_migrations",
    _meta,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", sa.Float, nullable=False),
)


def _m001_decisions(conn: sa.Connection) -> None:
    sa.Table("decisions", sa.MetaData(), *_columns_v1()).create(conn, checkfirst=True)


def _m002_indexes(conn: sa.Connection) -> None:
    table = sa.Table("decisions", sa.MetaData(), autoload_with=conn)
    sa.Index("ix_decisions_created", table.c.created).create(conn, checkfirst=True)
    sa.Index("ix_decisions_thread", table.c.thread_id, table.c.created).create(conn, checkfirst=True)


# Numbered schema migrations, applied in order, each once; each is idempotent so two processes may race.
MIGRATIONS: tuple[tuple[int, Callable[[sa.Connection], None]], ...] = ((1, _m001_decisions), (2, _m002_indexes))


@dataclass(frozen=True)
class Decision:
    id: int
    created: float
    run_id: str
    thread_id: str
    kind: str
    user: str | None
    query: str
    query_chars: int
    labels: list[str]
    leaf_labels: list[str]
    label_source: str
    decision: str
    route: str
    reasons: list[str]
    confidence: float | None
    votes: dict[str, Any]
    disagree: bool
    pending_review: bool
    review_mode: str | None
    reviewer: str | None
    filter_stage: str | None
    widened: bool
    answer_kind: str
    doc_ids: list[str]
    latency_ms: float
    node_ms: dict[str, float]
    model_versions: dict[str, str]
    error: str | None


ROW_KEYS = tuple(f.name for f in fields(Decision) if f.name != "id")


def _sqlite_path(url: str) -> Path | None:
    return (
        Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") and url != "sqlite:///:memory:" else None
    )


class DecisionLog:
    """Open (and migrate) the store; `record` queues a row without blocking, `flush` waits until queued rows are
    written. Reading needs no writer thread: `labelgate report` opens the same store."""

    def __init__(self, url: str, *, create: bool = True, max_queued: int = 10_000) -> None:
        self.url = url
        path = _sqlite_path(url)
        if path is not None and not create and not path.is_file():
            raise InputError(f"no decision log at {path}: no query has been logged there yet")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if url.startswith("sqlite") and path is None:  # in memory: one connection, or each thread sees its own db
                self.engine = sa.create_engine(
                    url, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
                )
            else:
                self.engine = sa.create_engine(url, connect_args={"timeout": 10} if path is not None else {})
            if path is not None:
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self.migrate()
        except (sa.exc.ArgumentError, sa.exc.OperationalError, sa.exc.ProgrammingError, ImportError) as exc:
            raise InputError(f"decision log {redact_url(url)} cannot be opened: {exc}") from exc
        self._queue: queue.Queue[dict[str, Any] | threading.Event | None] = queue.Queue(max_queued)
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self.dropped = 0  # rows lost because the queue was full or a write failed
        self._warned: set[str] = set()
        self.written = 0

    def migrate(self) -> list[int]:
        """Apply the numbered migrations this store has not seen; returns the versions applied now."""
        MIGRATIONS_TABLE.create(self.engine, checkfirst=True)
        with self.engine.connect() as conn:
            done = set(conn.execute(sa.select(MIGRATIONS_TABLE.c.version)).scalars())
        applied = []
        for version, step in MIGRATIONS:
            if version in done:
                continue
            with self.engine.begin() as conn:
                step(conn)
            try:
                with self.engine.begin() as conn:
                    conn.execute(MIGRATIONS_TABLE.insert().values(version=version, applied=time.time()))
                applied.append(version)
            except sa.exc.IntegrityError:  # another process recorded it first; the step itself is idempotent
                pass
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(MIGRATIONS_TABLE.c.version))).scalar() or 0)

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row for the writer thread; never blocks, never raises (a full queue drops the row, logged)."""
        self._start()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._lost(1, "queue full: the writer is behind (a slow or locked store)")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued so far is written (or failed); False on timeout."""
        if self._writer is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the writer thread (also run at interpreter exit)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            atexit.unregister(self.close)
            self._queue.put(None)
            writer.join(timeout)
        self.engine.dispose()

    def rows(self, *, since: float, until: float) -> list[Decision]:
        """Rows whose run started in [since, until), oldest first."""
        query = (
            sa.select(DECISIONS)
            .where(DECISIONS.c.created >= since, DECISIONS.c.created < until)
            .order_by(DECISIONS.c.created, DECISIONS.c.id)
        )
        with self.engine.connect() as conn:
            return [Decision(**row._mapping) for row in conn.execute(query)]

    def _start(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="decision-log", daemon=True)
                self._writer.start()
                atexit.register(self.close)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[dict[str, Any]] = []
            waiting: list[threading.Event] = []
            stop = False
            while True:  # one transaction for whatever queued up meanwhile
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= 200:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._insert(batch)
            for event in waiting:
                event.set()
            if stop:
                return

    def _insert(self, batch: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(DECISIONS.insert(), [{key: row.get(key) for key in ROW_KEYS} for row in batch])
            self.written += len(batch)
        except Exception as exc:  # the log must never take a query down with it
            first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]  # no SQL, no customer text
            self._lost(len(batch), f"{type(exc).__name__}: {first_line}")

    def _lost(self, count: int, why: str) -> None:
        self.dropped += count
        kind = why.split(":")[0]
        if kind not in self._warned or self.dropped % 100 < count:  # each kind of failure once, then every ~100th
            self._warned.add(kind)
            log.warning("decision log %s: %d row(s) not written (%d so far): %s", self.url, count, self.dropped, why)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL: the report and several serving processes read and write one file; NORMAL: no fsync per commit."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
