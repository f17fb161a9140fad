"""The feedback store: every confirmed label set with its provenance; `labelgate feedback export` → training rows.

SQLAlchemy Core, so `LABELGATE_FEEDBACK_URL=postgresql+psycopg://...` works as well as the default SQLite file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.core.data import Example
from app.core.errors import DataError, FeedbackStoreError, InputError, redact_url, store_failure
from app.core.taxonomy import Taxonomy

SOURCES = ("human", "llm+rules", "llm+voter", "doc_review")  # doc_review: a person labelled an unsure KB doc
# what retrain learns from: a person's labels, or LLM labels a rule confirmed. LLM labels only a voter agreed with are
# kept (and listed) but not trained on: the voter would be learning from its own agreement.
TRAINING_SOURCES = ("human", "llm+rules")
_meta = sa.MetaData()
FEEDBACK = sa.Table(
    "feedback",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("thread_id", sa.String(200), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("model_versions", sa.JSON, nullable=False),
    # what recorded it (thread:task:source): a node replayed after a crash records the same event, not a second row
    sa.Column("event", sa.String(400), nullable=True, unique=True),
)


STORE_FIXES = {  # what to do about a feedback-store error, by app.core.errors.store_failure's kind
    "full": "its disk is full: free space, then retry (a review stays pending; nothing was recorded)",
    "read_only": "it is read-only: make it writable, then retry (a review stays pending)",
    "locked": "another process holds its write lock: retry (a review stays pending)",
    "other": "check LABELGATE_FEEDBACK_URL / LABELGATE_DATABASE_URL",
}


def _store_error(url: str, exc: Exception, what: str = "cannot be opened") -> FeedbackStoreError:
    reason, trouble = store_failure(exc)
    return FeedbackStoreError(f"feedback store {redact_url(url)} {what}: {reason} ({STORE_FIXES[trouble]})")


def stored_rows(url: str, *, connect_timeout: float = 10.0) -> int | None:
    """How many rows the store at `url` holds (None: no feedback table yet), read without creating or migrating
    anything (`labelgate doctor`); a store that cannot be reached is a FeedbackStoreError."""
    connect_args = {"connect_timeout": max(1, round(connect_timeout))} if url.startswith("postgresql") else {}
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
        try:
            if not sa.inspect(engine).has_table("feedback"):
                return None
            with engine.connect() as conn:
                return int(conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar_one())
        finally:
            engine.dispose()
    except (sa.exc.ArgumentError, sa.exc.OperationalError, ImportError) as exc:
        raise _store_error(url, exc) from exc


@dataclass(frozen=True)
class Feedback:
    id: int
    created: float
    thread_id: str
    query: str
    labels: list[str]
    source: str
    reviewer: str | None
    model_versions: dict[str, str]
    event: str | None = None


class FeedbackStore:
    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # a Postgres server that does not answer must not hang startup (libpq waits forever by default)
        connect_args = {"connect_timeout": max(1, round(connect_timeout))} if url.startswith("postgresql") else {}
        self.url = url
        try:
            self.engine = sa.create_engine(url, connect_args=connect_args)
            _meta.create_all(self.engine)
            self._migrate()
        except (sa.exc.ArgumentError, sa.exc.OperationalError, ImportError) as exc:
            raise _store_error(url, exc) from exc

    def close(self) -> None:
        """Release the engine's pooled connections."""
        self.engine.dispose()

    def _migrate(self) -> None:
        """Stores made before `event` existed get the column and its unique index (no rows change)."""
        columns = {column["name"] for column in sa.inspect(self.engine).get_columns("feedback")}
        if "event" not in columns:
            with self.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE feedback ADD COLUMN event VARCHAR(400)"))
                conn.execute(sa.text("CREATE UNIQUE INDEX ux_feedback_event ON feedback (event)"))

    def add(
        self,
        *,
        thread_id: str,
        query: str,
        labels: list[str],
        source: str,
        reviewer: str | None = None,
        model_versions: dict[str, str] | None = None,
        event: str | None = None,
    ) -> int:
        """Insert one confirmed label set; with `event`, recording the same event again returns the first row's id."""
        if source not in SOURCES:
            raise InputError(f"feedback source {source!r} is not one of {', '.join(SOURCES)}")
        if not query.strip() or not labels:
            raise InputError("feedback needs a query and at least one label")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InputError("feedback needs a reviewer identity (the person, or the rules/voters that confirmed)")
        row = {
            "created": time.time(),
            "thread_id": thread_id,
            "query": query,
            "labels": list(labels),
            "source": source,
            "reviewer": reviewer,
            "model_versions": dict(model_versions or {}),
            "event": event,
        }
        try:
            with self.engine.begin() as conn:
                key = conn.execute(FEEDBACK.insert().values(**row)).inserted_primary_key
                return int(key[0]) if key else 0
        except sa.exc.IntegrityError:
            if event is None:
                raise
            with self.engine.connect() as conn:
                return int(conn.execute(sa.select(FEEDBACK.c.id).where(FEEDBACK.c.event == event)).scalar_one())
        except sa.exc.OperationalError as exc:  # the server went away after the store was opened
            raise _store_error(self.url, exc, "stopped answering") from exc

    def rows(self, *, sources: Iterable[str] = SOURCES) -> list[Feedback]:
        query = sa.select(FEEDBACK).where(FEEDBACK.c.source.in_(list(sources))).order_by(FEEDBACK.c.id)
        try:
            with self.engine.connect() as conn:
                return [Feedback(**row._mapping) for row in conn.execute(query)]
        except sa.exc.OperationalError as exc:
            raise _store_error(self.url, exc, "stopped answering") from exc

    def training_examples(self, taxonomy: Taxonomy, *, sources: Iterable[str] = TRAINING_SOURCES) -> list[Example]:
        """The latest confirmed labels per query text; labels no longer in the taxonomy are an error, not a guess."""
        latest: dict[str, Example] = {}
        for row in self.rows(sources=sources):
            known, unknown = taxonomy.split_known(row.labels)
            if unknown:
                raise DataError(f"feedback #{row.id}: labels {unknown} are not in taxonomy.yaml")
            latest[row.query] = Example(row.query, tuple(taxonomy.expand(known)))
        return list(latest.values())

    def export(self, path: Path, taxonomy: Taxonomy, *, sources: Iterable[str] = TRAINING_SOURCES) -> int:
        """Write training rows (the queries/*.jsonl format, with provenance) and return how many."""
        by_query = {row.query: row for row in self.rows(sources=sources)}
        examples = self.training_examples(taxonomy, sources=sources)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for ex in examples:
                source = by_query[ex.text]
                extra: dict[str, Any] = {k: v for k, v in asdict(source).items() if k in ("source", "reviewer")}
                handle.write(json.dumps({"text": ex.text, "labels": list(ex.labels), **extra}, ensure_ascii=False))
                handle.write("\n")
        return len(examples)
