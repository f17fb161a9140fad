"""Doc reviews: docs whose machine labels are unsure wait for a person — on the same review page, behind the same
token, answered into the same feedback store (source `doc_review`), marked as such (`kind: doc`, thread `doc:<id>`).

`labelgate index` queues every doc it labelled with confidence below `doc_review_below` (app/core/doclabels.py); a
person's labels are used by the next `labelgate index` as the doc's given labels (fully trusted, never re-labelled)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.core.doclabels import DocLabels
from app.core.errors import NotPendingError
from app.core.feedback import FeedbackStore
from app.core.taxonomy import Taxonomy

PREFIX = "doc:"
SOURCE = "doc_review"


def review_item(doc_id: str, title: str, text: str, found: DocLabels, taxonomy: Taxonomy) -> dict[str, Any]:
    """A queued doc in the review page's shape: its text as the 'query', its machine labels as candidates."""
    leaves = taxonomy.fine_only(found.labels)
    return {
        "thread_id": f"{PREFIX}{doc_id}",
        "kind": "doc",
        "doc_id": doc_id,
        "query": f"{title}\n{text}".strip()[:2000],
        "candidates": [{"label": x, "sources": ["doc-voters"], "score": round(found.confidence, 4)} for x in leaves],
        "reasons": ["doc_labels_unsure", *found.reasons],
        "mode": "doc",
        "confidence": found.confidence,
    }


class DocReviewQueue:
    """Pending doc reviews in a JSON Lines file under the state dir, rewritten atomically; one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _write(self, items: Sequence[Mapping[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        scratch.replace(self.path)

    def put(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Queue these docs (a doc already queued is replaced); returns how many are pending."""
        with self._lock:
            queued = {item["doc_id"]: dict(item) for item in self.pending()}
            queued.update({item["doc_id"]: dict(item) for item in items})
            self._write(list(queued.values()))
            return len(queued)

    def resolve(self, thread_id: str, labels: list[str], reviewer: str, store: FeedbackStore) -> dict[str, Any]:
        """Record a person's labels for a queued doc in the feedback store and take it off the queue."""
        with self._lock:
            items = self.pending()
            found = next((i for i in items if i["thread_id"] == thread_id), None)
            if found is None:
                raise NotPendingError(f"{thread_id} has no pending doc review")
            row = store.add(thread_id=thread_id, query=found["query"], labels=labels, source=SOURCE, reviewer=reviewer)
            self._write([i for i in items if i["thread_id"] != thread_id])
        return {"thread_id": thread_id, "kind": "doc", "doc_id": found["doc_id"], "labels": labels, "feedback": row}


def reviewed_doc_labels(store: FeedbackStore) -> dict[str, list[str]]:
    """Each reviewed doc's latest labels from the feedback store (doc id -> labels)."""
    return {row.thread_id[len(PREFIX) :]: list(row.labels) for row in store.rows(sources=[SOURCE])}


class WithDocReviews:
    """A review backend (app/service/web.py) that also lists and resolves the doc reviews."""

    def __init__(self, inner: Any, queue: DocReviewQueue, store: FeedbackStore) -> None:
        self.inner, self.queue, self.store = inner, queue, store
        self.taxonomy: Taxonomy = inner.taxonomy

    # the queue file and the feedback store are blocking I/O: off the event loop (the LangGraph server refuses
    # blocking calls in its handlers)
    async def pending(self) -> list[dict[str, Any]]:
        return [*(await self.inner.pending()), *(await asyncio.to_thread(self.queue.pending))]

    async def resolve(self, thread_id: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        if thread_id.startswith(PREFIX):
            return await asyncio.to_thread(self.queue.resolve, thread_id, labels, reviewer, self.store)
        result: dict[str, Any] = await self.inner.resolve(thread_id, labels, reviewer)
        return result
