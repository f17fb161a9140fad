"""The error hierarchy lives in one module, and the helpers its messages share: `store_failure` (what a store error
reports) and `redact_url` (a URL fit for messages: the password masked)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

import app.core.errors as errors
from app.core.checkpoints import SQLITE_FIXES, sqlite_error
from app.core.errors import LabelgateError, StoreTrouble, redact_url, store_failure
from app.core.feedback import STORE_FIXES, _store_error

APP = Path(errors.__file__).resolve().parents[1]
HIERARCHY = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, LabelgateError) and cls.__module__ == errors.__name__
}


def test_every_labelgate_error_is_defined_in_app_core_errors() -> None:
    """No module of app/ subclasses one of the hierarchy's classes: a new error class goes into app/core/errors.py."""
    elsewhere = []
    for path in sorted(APP.rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & set(HIERARCHY):
                    elsewhere.append(f"{path.relative_to(APP.parent)}:{node.lineno} {node.name}")
    assert elsewhere == []


def test_the_module_doc_draws_every_class() -> None:
    assert len(HIERARCHY) >= 16  # the base, 7 always here, 8 moved from their modules
    doc = errors.__doc__ or ""
    assert [name for name in HIERARCHY if f" {name} " not in doc] == []
    # the store errors are what the servers answer 503 for; a feedback-store error is also bad input
    for name in ("CheckpointerError", "KnowledgeBaseError", "FeedbackStoreError"):
        assert issubclass(HIERARCHY[name], errors.StoreUnavailableError)
    assert issubclass(errors.FeedbackStoreError, errors.InputError)
    assert issubclass(errors.NotPendingError, errors.ReviewError)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("database is locked", "locked"),
        ("database table is locked: checkpoints", "locked"),
        ("attempt to write a readonly database", "read_only"),
        ("unable to open database file", "read_only"),
        ("[Errno 30] Read-only file system: '/x'", "read_only"),
        ("database or disk is full", "full"),
        ("[Errno 28] No space left on device", "full"),
        ("(sqlite3.OperationalError) database or disk is full\n[SQL: INSERT ...]", "full"),
        ("disk I/O error", "other"),
        ("file is not a database", "other"),
    ],
)
def test_store_failure_reads_sqlite_and_os_messages(message: str, kind: str) -> None:
    first, got = store_failure(sqlite3.OperationalError(message))
    assert (first, got) == (message.splitlines()[0], kind)


def test_a_message_less_error_is_named_by_its_type() -> None:
    assert store_failure(TimeoutError()) == ("TimeoutError", "other")
    assert store_failure(OSError("  \n  ")) == ("OSError", "other")


MARKERS = {"locked": "database is LOCKED", "read_only": "Read-Only file system", "full": "Disk Is Full"}
NEUTRAL = st.text(alphabet="0123456789 -_:()[]'/.", max_size=30)  # cannot spell a marker


@given(kind=st.sampled_from(sorted(MARKERS)), before=NEUTRAL, after=NEUTRAL)
def test_a_marker_anywhere_in_the_first_line_decides_whatever_its_case(kind: str, before: str, after: str) -> None:
    message = f"{before}{MARKERS[kind]}{after}"
    assert store_failure(RuntimeError(message)) == (message.strip(), kind)


@given(first=NEUTRAL.filter(lambda s: s.strip()), rest=st.sampled_from(sorted(MARKERS.values())))
def test_only_the_first_line_is_read(first: str, rest: str) -> None:
    """A SQLAlchemy error goes on with its SQL and parameters (a user's query): those lines must not decide."""
    assert store_failure(RuntimeError(f"{first}\n[parameters: ('{rest}',)]")) == (first.strip(), "other")


def test_each_caller_has_a_fix_for_every_kind() -> None:
    kinds = set(get_args(StoreTrouble))
    assert set(SQLITE_FIXES) == kinds and set(STORE_FIXES) == kinds
    path = Path("/x/checkpoints.sqlite")
    locked = str(sqlite_error(path, sqlite3.OperationalError("database is locked")))
    assert locked == f"checkpoint file {path}: database is locked — {SQLITE_FIXES['locked']}"
    full = str(_store_error("postgresql+psycopg://lg:hunter2@db:5433/fb", OSError("No space left on device")))
    shown = "feedback store postgresql+psycopg://lg:***@db:5433/fb cannot be opened: No space left on device"
    assert full == f"{shown} ({STORE_FIXES['full']})"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://lg:pw@db:5433/x?sslmode=require", "postgresql://lg:***@db:5433/x?sslmode=require"),
        ("postgresql://postgres@127.0.0.1:5/x", "postgresql://postgres@127.0.0.1:5/x"),
        (
            "postgresql+psycopg://alice:s3cr@t@127.0.0.1:5432/feedback",
            "postgresql+psycopg://alice:***@127.0.0.1:5432/feedback",
        ),
        ("postgresql://u:p@[::1]:5432/x?tag=a@b", "postgresql://u:***@[::1]:5432/x?tag=a@b"),  # host kept as written
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        ("sqlite:////var/lib/labelgate/feedback.sqlite", "sqlite:////var/lib/labelgate/feedback.sqlite"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("http://127.0.0.1:8000/x@y", "http://127.0.0.1:8000/x@y"),  # an '@' past the authority is no password
        ("not a url", "'not a url'"),
        ("localhost:8000", "'localhost:8000'"),
        ("", "''"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


WORD = st.text(alphabet="abcdefghij0123456789-.", min_size=1, max_size=12)
SECRET = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ!$&*+;=:", min_size=1, max_size=20)  # never in the other parts


@given(
    scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "http", "https"]),
    user=WORD,
    password=SECRET,
    host=WORD,
    port=st.none() | st.integers(1, 65535),
    tail=st.sampled_from(["", "/db", "/db?sslmode=require", "/?a=b@c", "#frag"]),
)
def test_a_password_never_shows_and_the_rest_is_kept(
    scheme: str, user: str, password: str, host: str, port: int | None, tail: str
) -> None:
    hostport = host + (f":{port}" if port else "")
    shown = redact_url(f"{scheme}://{user}:{password}@{hostport}{tail}")
    assert shown == f"{scheme}://{user}:***@{hostport}{tail}"
    assert not any(c in shown for c in password if c.isupper())
    assert redact_url(shown) == shown  # masking twice changes nothing


@given(rest=st.text(alphabet="ab1:@/?#.%+*", max_size=30))
def test_what_urlsplit_calls_the_password_is_masked(rest: str) -> None:
    url = f"postgresql://{rest}"
    shown = redact_url(url)
    assert urlsplit(shown).password in (None, "***")
    if urlsplit(url).password is None:
        assert shown == url
    assert redact_url(shown) == shown
