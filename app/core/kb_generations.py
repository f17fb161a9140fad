"""Atomic re-indexing. `labelgate index` never writes into the collections that serve: it copies the serving
generation (chunks, label partitions, their stored vectors: nothing is embedded again), syncs the copy with the docs
file, and only then moves a pointer to it — one metadata write. A crash or kill at any point before that leaves the
previous generation serving, untouched; the half-built copy is dropped by the next successful run.

Names: generation `<collection>.g<stamp>` with partitions `<generation>--<hash>`; the pointer is the metadata of
the small collection `<collection>--current`. A collection indexed before generations existed is simply `<collection>`
(served while no pointer exists, copied into the first generation). The switched-from generation is kept, so
processes that still have it open keep answering until they follow the pointer (KnowledgeBase checks it every
FOLLOW_SECONDS); older ones are dropped. Run one `labelgate index` at a time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from app.core.errors import KnowledgeBaseError

if TYPE_CHECKING:
    from app.core.data import Doc
    from app.core.kb import KnowledgeBase, Labeler
    from app.core.taxonomy import Taxonomy

log = logging.getLogger(__name__)
FOLLOW_SECONDS = 2.0  # how stale a serving process's view of the pointer may get
PAGE = 2000


def partition_name(collection: str, label: str) -> str:
    """Chroma collection of one label partition (names allow only [a-zA-Z0-9._-], labels are any text)."""
    return f"{collection}--{hashlib.sha1(label.encode()).hexdigest()[:12]}"


def pointer_name(collection: str) -> str:
    return f"{collection}--current"


def serving_generation(client: Any, collection: str) -> str:
    """The collection that serves `collection`: the pointer's generation, or `collection` itself (no pointer yet)."""
    from chromadb.errors import NotFoundError

    try:
        pointer = client.get_collection(pointer_name(collection))
    except NotFoundError:
        return collection
    except Exception as exc:  # chromadb raises many types; all mean the store is unusable
        raise KnowledgeBaseError(f"cannot read the index pointer of {collection!r}: {exc}") from exc
    return str((pointer.metadata or {}).get("generation") or collection)


def switch_generation(client: Any, collection: str, generation: str, fingerprint: str = "") -> None:
    """Make `generation` the serving one: a single metadata write on the pointer collection. `fingerprint` names
    the inputs it was built from (docs file, taxonomy, chunking, embedder, labelling voters)."""
    pointer = client.get_or_create_collection(pointer_name(collection), embedding_function=None)
    pointer.modify(metadata={"generation": generation, "fingerprint": fingerprint, "switched_at": time.time()})


def _fingerprint_of(client: Any, collection: str) -> str:
    try:
        return str((client.get_collection(pointer_name(collection)).metadata or {}).get("fingerprint") or "")
    except Exception:  # no pointer yet (or unreadable): nothing to compare with
        return ""


def _exists(client: Any, name: str) -> bool:
    return name in {c.name for c in client.list_collections()}


def _pages(collection: Any, include: list[str]) -> Iterable[dict[str, Any]]:
    offset = 0
    while True:
        got = collection.get(include=include, limit=PAGE, offset=offset)
        if not got["ids"]:
            return
        yield got
        offset += len(got["ids"])
        if len(got["ids"]) < PAGE:
            return


def copy_generation(source: KnowledgeBase, target: KnowledgeBase) -> int:
    """Copy every chunk and partition of `source` into the empty `target`, stored vectors included; chunks copied."""
    labels: set[str] = set()
    copied = 0
    for got in _pages(source.collection, ["embeddings", "documents", "metadatas"]):
        target.collection.add(
            ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"], metadatas=got["metadatas"]
        )
        labels.update(part for meta in got["metadatas"] for part in (meta or {}).get("partitions", []))
        copied += len(got["ids"])
    names = {c.name for c in source.client.list_collections()}
    for label in sorted(labels):
        if partition_name(source.collection.name, label) not in names:
            continue  # an older index without this partition: the sync below fills it for changed chunks only
        for got in _pages(source._partition(label), ["embeddings"]):
            target._partition(label).add(ids=got["ids"], embeddings=got["embeddings"])
    return copied


def drop_generation(client: Any, generation: str) -> None:
    """Delete a generation and its label partitions."""
    for c in client.list_collections():
        if c.name == generation or (c.name.startswith(f"{generation}--") and c.name != pointer_name(generation)):
            client.delete_collection(c.name)


def stale_generations(client: Any, collection: str, keep: Iterable[str]) -> list[str]:
    """Generations of `collection` (and the pre-generation collection itself) other than those in `keep`."""
    pattern = re.compile(rf"{re.escape(collection)}\.g\d+")
    names = {c.name for c in client.list_collections()}
    found = [n for n in names if pattern.fullmatch(n)] + ([collection] if collection in names else [])
    return sorted(set(found) - set(keep))


def new_generation_name(collection: str) -> str:
    return f"{collection}.g{time.strftime('%Y%m%d%H%M%S')}{time.perf_counter_ns() % 1000:03d}{os.getpid() % 1000:03d}"


def index_atomically(
    serving: KnowledgeBase,
    collection: str,
    docs: Iterable[Doc],
    taxonomy: Taxonomy,
    *,
    chunk_chars: int,
    labeler: Labeler | None = None,
    total: int | None = None,
    fingerprint: str = "",
) -> dict[str, Any]:
    """Sync a copy of the serving generation with `docs` and switch to it when complete (see the module's note).
    Nothing changed → the copy is dropped and nothing switches; the same `fingerprint` as the serving generation's →
    nothing is even copied."""
    client = serving.client
    current = serving_generation(client, collection)
    had_index = _exists(client, current)
    if had_index and fingerprint and _fingerprint_of(client, collection) == fingerprint:
        chunks = int(client.get_collection(current).count())
        unchanged = {"docs": total or 0, "chunks": chunks, "upserted": 0, "deleted": 0, "unchanged": chunks}
        return unchanged | {"generation": current, "switched": False}
    name = new_generation_name(collection)
    build = type(serving).open(
        client,
        name,
        serving.embedder,
        query_prefix=serving.query_prefix,
        passage_prefix=serving.passage_prefix,
        ef_search=serving.ef_search,
        follow=False,
    )
    try:
        if had_index:
            source = type(serving).open(client, current, serving.embedder, ef_search=serving.ef_search, follow=False)
            copy_generation(source, build)
        counts = build.index(docs, taxonomy, chunk_chars=chunk_chars, labeler=labeler, total=total)
    except BaseException:
        log.warning("indexing failed: %s keeps serving; dropping the partial generation %s", current, name)
        drop_generation(client, name)
        raise
    if had_index and counts["upserted"] == 0 and counts["deleted"] == 0:
        drop_generation(client, name)
        if fingerprint and current != collection:  # remember: the next run with these inputs copies nothing
            switch_generation(client, collection, current, fingerprint)
        return counts | {"generation": current, "switched": False}
    switch_generation(client, collection, name, fingerprint)
    for old in stale_generations(client, collection, keep=(name, current)):
        drop_generation(client, old)
    return counts | {"generation": name, "previous": current if had_index else None, "switched": True}
