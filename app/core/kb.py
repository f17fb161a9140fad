"""Knowledge base on Chroma: chunk -> label -> aggregate to doc labels -> store with e5 embeddings; filtered search."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from app.core.chroma import ephemeral_client as ephemeral_client
from app.core.chroma import make_client as make_client
from app.core.config import PARTITION_EF_SEARCH
from app.core.data import Doc
from app.core.doclabels import titled
from app.core.errors import KnowledgeBaseError as KnowledgeBaseError  # re-exported: nodes/retrieve imports it here
from app.core.kb_generations import FOLLOW_SECONDS, partition_name, serving_generation
from app.core.ranking import chunk_partitions
from app.core.taxonomy import Taxonomy
from app.core.textutil import chunk_text
from app.core.voters.encoders import TextEncoder

log = logging.getLogger(__name__)
UNLABELLED = "_unlabelled"
Labeler = Callable[[Sequence[str]], list[list[str]]]
T = TypeVar("T")


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), read lazily."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class Hit:
    id: str
    doc_id: str
    title: str
    text: str
    labels: list[str]
    similarity: float
    label_source: str = "given"  # given (by the doc's author) | voters (labelled at index time)
    label_confidence: float | None = None  # how sure the machine labels are (app/core/doclabels.py); None: not stored


# Label partitions are small (a few % of the KB each), so their HNSW graphs are built denser and searched wider than
# Chroma's defaults (16 / 100 / 100). `labelgate bench filter`, real e5 vectors, 10k-chunk partition: recall@10 of
# exact 0.75–0.78 with the defaults, 0.98–0.99 with ef_search 1500, 0.998–1.0 with these, 2.0–2.4 ms a query.
PARTITION_GRAPH = {"max_neighbors": 32, "ef_construction": 200}


def open_collection(client: Any, name: str, ef_search: int | None = None) -> Any:
    """A cosine collection; with `ef_search`, a partition: a denser graph (new collections only; those parameters are
    fixed at creation) searched at least that wide (an older collection is raised to it: Chroma persists the change
    and applies it from the next process on)."""
    hnsw: dict[str, Any] = {"space": "cosine"} | ({"ef_search": ef_search} | PARTITION_GRAPH if ef_search else {})
    collection = client.get_or_create_collection(name, embedding_function=None, configuration={"hnsw": hnsw})
    if ef_search:
        current = ((getattr(collection, "configuration", None) or {}).get("hnsw") or {}).get("ef_search")
        if current is not None and current < ef_search:
            log.info("raising ef_search of %s from %s to %s (effective in the next process)", name, current, ef_search)
            collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
    return collection


def _hits(ids: Sequence[str], texts: Sequence[Any], metas: Sequence[Any], distances: Sequence[float]) -> list[Hit]:
    hits = []
    for chunk_id, text, meta, distance in zip(ids, texts, metas, distances, strict=True):
        meta = meta or {}
        labels = [x for x in meta.get("labels", []) if x != UNLABELLED]
        hits.append(
            Hit(
                chunk_id,
                str(meta.get("doc_id", chunk_id)),
                str(meta.get("title", "")),
                text or "",
                labels,
                round(1.0 - float(distance), 6),
                str(meta.get("label_source", "given")),
                float(meta["label_confidence"]) if "label_confidence" in meta else None,
            )
        )
    return hits


@dataclass
class KnowledgeBase:
    """Chunks in one Chroma collection (text, label metadata, vector) plus a partition collection per label (ids and
    vectors only). A label filter searches the partitions: at 100k chunks a metadata `where` costs 50–100 ms a query
    in Chroma 1.5, a partition 2–3 ms (STACK.md; `labelgate bench`)."""

    collection: Any
    embedder: TextEncoder
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    client: Any = None
    ef_search: int = PARTITION_EF_SEARCH  # of the partitions: searched nearly exhaustively (they are small)
    _parts: dict[str, Any] = field(default_factory=dict)
    _machine: dict[str, bool] = field(default_factory=dict)  # generation → has machine-labelled chunks
    alias: str | None = None  # the name whose index pointer this KB follows (app/core/kb_generations.py); None: fixed
    _followed: float = field(default_factory=time.monotonic)

    @classmethod
    def open(
        cls,
        client: Any,
        name: str,
        embedder: TextEncoder,
        *,
        query_prefix: str = "query: ",
        passage_prefix: str = "passage: ",
        ef_search: int = PARTITION_EF_SEARCH,
        create: bool = True,
        follow: bool = True,
    ) -> KnowledgeBase:
        """The KB `name` — the generation its index pointer names, if any (follow=False: the collection `name` itself);
        with create=False a missing collection is an error (nothing indexed yet)."""
        from chromadb.errors import NotFoundError

        alias, name = (name, serving_generation(client, name)) if follow else (None, name)
        try:
            collection = open_collection(client, name) if create else client.get_collection(name)
        except NotFoundError as exc:
            raise KnowledgeBaseError(f"Chroma collection {name!r} does not exist: run `labelgate index`") from exc
        except Exception as exc:  # chromadb raises many types; all mean the store is unusable
            raise KnowledgeBaseError(f"cannot open Chroma collection {name!r}: {exc}") from exc
        return cls(collection, embedder, query_prefix, passage_prefix, client, ef_search, alias=alias)

    def _follow(self) -> None:
        """Move to the generation the pointer names when `labelgate index` switched it (checked every few seconds)."""
        if self.alias is None or time.monotonic() - self._followed < FOLLOW_SECONDS:
            return
        self._followed = time.monotonic()
        generation = serving_generation(self.client, self.alias)
        if generation != self.collection.name:
            try:
                self.collection, self._parts = self.client.get_collection(generation), {}
            except Exception as exc:  # dropped between the pointer read and now: a KnowledgeBaseError, like a query
                raise self._query_error(exc) from exc

    def count(self) -> int:
        return int(self.collection.count())

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([self.query_prefix + text])[0]

    def _query_error(self, exc: Exception) -> KnowledgeBaseError:
        from chromadb.errors import NotFoundError

        if isinstance(exc, NotFoundError):  # dropped (or the server's data dir changed) while we had it open
            return KnowledgeBaseError(
                f"Chroma collection {self.collection.name!r} (or one of its label partitions) no longer exists: "
                f"run `labelgate index` ({exc})"
            )
        return KnowledgeBaseError(f"Chroma query on {self.collection.name!r} failed: {exc}")

    def has_machine_labels(self) -> bool:
        """Whether any chunk's labels were given by a machine (the voters, at index time). Soft gating admits only
        those past the filter (app/core/softgate.py `admissible`), so without any its unfiltered query is skipped.
        Read once per generation (and again after `index` writes into this one)."""
        self._follow()
        name = self.collection.name
        if name not in self._machine:
            try:
                got = self.collection.get(where={"label_source": {"$ne": "given"}}, limit=1, include=[])
            except Exception as exc:
                raise self._query_error(exc) from exc
            self._machine[name] = bool(got["ids"])
        return self._machine[name]

    def _partition(self, label: str) -> Any:
        if label not in self._parts:
            self._parts[label] = open_collection(
                self.client, partition_name(self.collection.name, label), self.ef_search
            )
        return self._parts[label]

    def search(self, vector: np.ndarray, *, partitions: Sequence[str] | None, n: int) -> list[Hit]:
        """Nearest chunks to the vector in the given label partitions (None = all chunks); cosine similarity."""
        if n <= 0 or (partitions is not None and not partitions):
            return []
        self._follow()
        query = {"query_embeddings": [vector.tolist()], "n_results": n}
        try:
            if partitions is None:
                result = self.collection.query(**query, include=["documents", "metadatas", "distances"])
                return _hits(result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0])
            found: dict[str, float] = {}
            for label in partitions:
                part = self._partition(label).query(**query, include=["distances"])
                for chunk_id, distance in zip(part["ids"][0], part["distances"][0], strict=True):
                    found[chunk_id] = min(distance, found.get(chunk_id, distance))
            best = sorted(found, key=found.__getitem__)[:n]
            rows = self.collection.get(ids=best, include=["documents", "metadatas"]) if best else {"ids": []}
        except Exception as exc:
            raise self._query_error(exc) from exc
        by_id = {
            cid: (doc, meta)
            for cid, doc, meta in zip(
                rows["ids"], rows.get("documents") or [], rows.get("metadatas") or [], strict=True
            )
        }
        kept = [cid for cid in best if cid in by_id]
        return _hits(kept, [by_id[c][0] for c in kept], [by_id[c][1] for c in kept], [found[c] for c in kept])

    def index(
        self,
        docs: Iterable[Doc],
        taxonomy: Taxonomy,
        *,
        chunk_chars: int,
        labeler: Labeler | None = None,
        batch_size: int = 256,
        total: int | None = None,
    ) -> dict[str, int]:
        """Sync the collection and its partitions with `docs`: upsert changed chunks, delete chunks of removed or
        shortened docs. Streaming: docs are chunked, labelled, embedded and written `batch_size` at a time, so memory
        stays flat however large the KB — only each stored chunk's id, hash and partitions are held.

        Docs without labels are labelled by `labeler`, all chunks of a batch in one call; chunk labels aggregate
        (union) into doc labels, which every chunk of the doc carries, so a doc is found from any of its labels. A
        chunk counts as changed when its text, title, labels or the embedder change.
        """
        inner = getattr(self.embedder, "inner", self.embedder)  # a cache wrapper does not change the vectors
        embedder_id = f"{inner.spec}:{type(inner).__name__}"
        old = self._chunk_state()
        wanted: set[str] = set()
        counts = {"docs": 0, "chunks": 0, "upserted": 0}
        bar = tqdm(total=total, desc="indexing", unit="doc", disable=total == 0)
        with bar, ThreadPoolExecutor(1, thread_name_prefix="labelgate-index") as writer:
            pending: Future[None] | None = None  # Chroma writes batch k while the embedder works on batch k + 1
            for group in batches(docs, batch_size):
                rows = self._rows(group, taxonomy, chunk_chars, labeler, embedder_id)
                wanted.update(cid for cid, _, _ in rows)
                changed = [row for row in rows if old.get(row[0], ("", ()))[0] != row[2]["hash"]]
                self._leave(
                    (cid, set(old.get(cid, ("", ()))[1]) - set(meta.get("partitions", []))) for cid, _, meta in changed
                )
                for start in range(0, len(changed), batch_size):
                    batch = changed[start : start + batch_size]
                    vectors = self.embedder.encode([self.passage_prefix + text for _, text, _ in batch])
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(self._write, batch, vectors)
                counts["docs"] += len(group)
                counts["chunks"] += len(rows)
                counts["upserted"] += len(changed)
                bar.update(len(group))
            if pending is not None:
                pending.result()
        stale = [cid for cid in old if cid not in wanted]
        self._leave((cid, set(old[cid][1])) for cid in stale)
        for start in range(0, len(stale), batch_size):
            self.collection.delete(ids=stale[start : start + batch_size])
        self._machine.pop(self.collection.name, None)  # label sources may have changed: read again
        return counts | {"deleted": len(stale), "unchanged": counts["chunks"] - counts["upserted"]}

    def _rows(
        self,
        docs: Sequence[Doc],
        taxonomy: Taxonomy,
        chunk_chars: int,
        labeler: Labeler | None,
        embedder_id: str,
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(chunk id, text, metadata) of each chunk of `docs`; unlabelled docs labelled in one labeler call (a labeler
        with `label_docs` labels each doc as a whole and says how sure it is: stored as `label_confidence`)."""
        chunked = [(doc, chunk_text(doc.text, chunk_chars)) for doc in docs]
        whole = getattr(labeler, "label_docs", None)
        bare = [doc for doc, _ in chunked if not doc.labels]
        unlabelled = [titled(doc.title, chunks) for doc, chunks in chunked if not doc.labels]
        by_doc = iter(whole(bare, unlabelled) if whole is not None and unlabelled else [])
        pending = [chunk for chunks in unlabelled for chunk in chunks] if whole is None else []
        found = iter(labeler(pending) if labeler is not None and pending else [])
        rows = []
        for doc, chunks in chunked:
            labels, source, sure = list(doc.labels), "given", None
            if not labels and whole is not None:
                decided = next(by_doc)
                labels, source, sure = list(decided.labels), "voters", decided.confidence
                if (note := getattr(labeler, "decided", None)) is not None:
                    note(doc, decided)  # e.g. queue the unsure ones for review
            elif not labels and labeler is not None:
                united = [label for _ in chunks for label in next(found)]
                labels, source = taxonomy.expand(united), "voters"
            meta_labels = labels or [UNLABELLED]
            parts = chunk_partitions(labels, taxonomy)  # none for an unlabelled chunk: found unfiltered only
            for i, chunk in enumerate(chunks):
                stamp = f"{doc.title}\n{chunk}\n{meta_labels}\n{parts}\n{embedder_id}" + (
                    f"\n{sure}" if sure is not None else ""
                )
                meta: dict[str, Any] = {
                    "doc_id": doc.id,
                    "title": doc.title,
                    "labels": meta_labels,
                    "label_source": source,
                    "hash": hashlib.sha1(stamp.encode()).hexdigest()[:16],
                } | ({"partitions": parts} if parts else {})  # Chroma rejects empty lists
                if sure is not None:
                    meta["label_confidence"] = float(sure)
                rows.append((f"{doc.id}#{i}", chunk, meta))
        return rows

    def _leave(self, moves: Iterable[tuple[str, set[str]]], batch_size: int = 256) -> None:
        """Delete chunks from partitions they no longer belong to: (chunk id, partitions it leaves)."""
        leaving: dict[str, list[str]] = {}
        for cid, parts in moves:
            for part in parts:
                leaving.setdefault(part, []).append(cid)
        for part, ids in leaving.items():
            for start in range(0, len(ids), batch_size):
                self._partition(part).delete(ids=ids[start : start + batch_size])

    def _chunk_state(self, page: int = 5000) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each stored chunk's hash and partitions, a page at a time (one `get()` of 100k rows exceeds SQLite's
        variable limit)."""
        found: dict[str, tuple[str, tuple[str, ...]]] = {}
        while True:
            got = self.collection.get(include=["metadatas"], limit=page, offset=len(found))
            for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
                meta = meta or {}
                found[cid] = (str(meta.get("hash", "")), tuple(meta.get("partitions", [])))
            if len(got["ids"]) < page:
                return found

    def _write(self, batch: Sequence[tuple[str, str, dict[str, Any]]], vectors: np.ndarray) -> None:
        self.collection.upsert(
            ids=[r[0] for r in batch],
            documents=[r[1] for r in batch],
            metadatas=[r[2] for r in batch],
            embeddings=vectors,
        )
        members: dict[str, list[int]] = {}
        for i, (_, _, meta) in enumerate(batch):
            for part in meta.get("partitions", []):
                members.setdefault(part, []).append(i)
        for part, rows in members.items():
            self._partition(part).upsert(ids=[batch[i][0] for i in rows], embeddings=vectors[rows])
