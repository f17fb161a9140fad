"""Every error labelgate raises on purpose, in one place, and the two helpers their messages share.

    LabelgateError                      base: the CLI prints the message and exits 2; the servers answer 400
    ├── ConfigError                     settings are invalid or inconsistent
    ├── DataError                       a data file is malformed (the message names file, line and reason)
    ├── InputError                      a caller passed something we refuse (empty query, unknown label)
    │   └── FeedbackStoreError          (also a StoreUnavailableError) the feedback store cannot be opened or used
    ├── StoreUnavailableError           a store labelgate depends on failed or is unreachable: retry (servers: 503)
    │   ├── CheckpointerError           the checkpoint store (SQLite file, PostgreSQL) cannot be opened or used
    │   ├── KnowledgeBaseError          Chroma is unreachable or the collection is unusable
    │   └── FeedbackStoreError
    ├── ModelNotBuiltError              a model directory is missing or corrupt (the message names the build command)
    ├── ModelBuildError                 a model source package is missing, or its file is not what we expect
    ├── MissingExtraError               an optional dependency is not installed (the message names the pip install)
    ├── LLMServerError                  the local LLM server cannot be started, reached or stopped
    ├── ReviewError                     a review cannot be resumed (not paused, invalid labels, missing reviewer)
    │   └── NotPendingError             the thread does not exist or is not waiting for a review (servers: 409)
    ├── JobError                        a benchmark child process failed
    └── LocalServerError                a local test server (PostgreSQL, Chroma) cannot be installed or started

`store_failure` reads what kind of trouble a store error reports (each caller names its own fix); `redact_url` makes
a store URL fit for messages.
"""

from __future__ import annotations

import re
from typing import Literal

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
StoreTrouble = Literal["locked", "read_only", "full", "other"]
# markers in SQLite's (and the OS's) messages, lower case; the first kind with a marker in the message wins
_TROUBLE_MARKERS: tuple[tuple[StoreTrouble, tuple[str, ...]], ...] = (
    ("full", ("disk is full", "disk full", "no space")),
    ("read_only", ("readonly", "read-only", "unable to open")),
    ("locked", ("locked", "busy")),
)


class LabelgateError(Exception):
    """Base of every labelgate error."""


class ConfigError(LabelgateError):
    """Settings are invalid or inconsistent."""


class DataError(LabelgateError):
    """A data file (taxonomy, rules, queries, docs) is malformed; the message names file, line and reason."""


class InputError(LabelgateError):
    """A caller passed something we refuse (empty query, unknown label, unknown thread)."""


class StoreUnavailableError(LabelgateError):
    """A store labelgate depends on (checkpoints, feedback, Chroma) failed or cannot be reached: retry later."""


class CheckpointerError(StoreUnavailableError):
    """The checkpoint store cannot be opened or stopped answering (server down, bad URL, no permission)."""


class KnowledgeBaseError(StoreUnavailableError):
    """Chroma is unreachable or the collection is unusable."""


class FeedbackStoreError(InputError, StoreUnavailableError):
    """The feedback store cannot be opened or stopped answering; the message names it (password hidden)."""


class ModelNotBuiltError(LabelgateError):
    """A model directory is missing or corrupt; the message names the command that builds it."""


class ModelBuildError(LabelgateError):
    """A model source package is missing, or its file is not what we expect."""


class MissingExtraError(LabelgateError):
    """An optional dependency is not installed."""


class LLMServerError(LabelgateError):
    """The local LLM server cannot be started, reached or stopped."""


class ReviewError(LabelgateError):
    """A review cannot be resumed (not paused, invalid labels, missing reviewer)."""


class NotPendingError(ReviewError):
    """The thread does not exist or is not waiting for a review."""


class JobError(LabelgateError):
    """A benchmark child process failed."""


class LocalServerError(LabelgateError):
    """A local test server cannot be installed or started; the message says why."""


def store_failure(exc: BaseException) -> tuple[str, StoreTrouble]:
    """(the first line of the error's message — its type name when it has none, what kind of trouble it reports):
    "full" (disk full), "read_only" (read-only file or mount, cannot open the file), "locked" (another process holds
    the write lock) or "other". Only the first line is read: a SQLAlchemy error goes on with the SQL and its values."""
    first = (str(exc).strip() or type(exc).__name__).splitlines()[0].rstrip()
    lowered = first.lower()
    for kind, markers in _TROUBLE_MARKERS:
        if any(marker in lowered for marker in markers):
            return first, kind
    return first, "other"


def redact_url(url: str) -> str:
    """The URL with its password masked (`user:***@host`), for messages and `labelgate doctor`; a URL without a
    password comes back as it is, text that is not a `scheme://` URL as its repr. The password is what urlsplit (and
    libpq) reads: after the first ':' of what precedes the authority's last '@' (it ends at '/', '?' or '#')."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return repr(url)
    start = scheme.end()
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    userinfo, at, _ = url[start : min(ends, default=len(url))].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{url[:start]}{userinfo.split(':', 1)[0]}:***@{url[start + len(userinfo) + 1 :]}"
