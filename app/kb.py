"""Knowledge base on Chroma: chunk -> label -> aggregate to doc labels -> store with e5 embeddings; filtered search."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from app.config import Settings
from app.data import Doc
from app.errors import LabelgateError
from app.taxonomy import Taxonomy
from app.voters.encoders import TextEncoder

log = logging.getLogger(__name__)
UNLABELLED = "_unlabelled"
Labeler = Callable[[Sequence[str]], list[list[str]]]


class KnowledgeBaseError(LabelgateError):
    """Chroma is unreachable or the collection is unusable."""


def make_client(settings: Settings) -> Any:
    """Embedded PersistentClient in the data dir, or an HttpClient when LABELGATE_CHROMA_URL is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "localhost", port=url.port or 8000, ssl=url.scheme == "https", settings=chroma_settings
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def ephemeral_client() -> Any:
    """An in-memory Chroma (demo side collections, tests). Chroma keeps one per process and refuses a second with
    other settings, so every caller goes through here."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Sentence-packed chunks of at most max_chars (a longer single sentence is cut)."""
    sentences = [s for s in re.split(r"(?<=[。！？!?；;\n])", text) if s.strip()]
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:
            chunks.extend([current] if current else [])
            current = ""
            chunks.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if len(current) + len(sentence) > max_chars and current:
            chunks.append(current)
            current = ""
        current += sentence
    if current.strip():
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]


@dataclass(frozen=True)
class Hit:
    id: str
    doc_id: str
    title: str
    text: str
    labels: list[str]
    similarity: float


@dataclass
class KnowledgeBase:
    collection: Any
    embedder: TextEncoder
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "

    @classmethod
    def open(
        cls,
        client: Any,
        name: str,
        embedder: TextEncoder,
        *,
        query_prefix: str = "query: ",
        passage_prefix: str = "passage: ",
    ) -> KnowledgeBase:
        try:
            collection = client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        except Exception as exc:  # chromadb raises many types; all mean the store is unusable
            raise KnowledgeBaseError(f"cannot open Chroma collection {name!r}: {exc}") from exc
        return cls(collection, embedder, query_prefix, passage_prefix)

    def count(self) -> int:
        return int(self.collection.count())

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([self.query_prefix + text])[0]

    def search(self, vector: np.ndarray, *, where: dict[str, Any] | None, n: int) -> list[Hit]:
        """Nearest chunks to the vector among those matching `where` (cosine similarity = 1 - distance)."""
        if n <= 0:
            return []
        try:
            result = self.collection.query(
                query_embeddings=[vector.tolist()],
                n_results=n,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        except Exception as exc:
            raise KnowledgeBaseError(f"Chroma query failed: {exc}") from exc
        hits = []
        for chunk_id, text, meta, distance in zip(
            result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
        ):
            labels = [x for x in meta.get("labels", []) if x != UNLABELLED]
            hits.append(
                Hit(
                    chunk_id,
                    str(meta.get("doc_id", chunk_id)),
                    str(meta.get("title", "")),
                    text or "",
                    labels,
                    round(1.0 - float(distance), 6),
                )
            )
        return hits

    def index(
        self,
        docs: Sequence[Doc],
        taxonomy: Taxonomy,
        *,
        chunk_chars: int,
        labeler: Labeler | None = None,
        batch_size: int = 256,
    ) -> dict[str, int]:
        """Sync the collection with `docs`: upsert changed chunks, delete chunks of removed or shortened docs.

        Docs without labels are labelled chunk by chunk by `labeler`; chunk labels aggregate (union) into doc
        labels, which every chunk of the doc carries, so a doc is found from any of its labels.
        """
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for doc in docs:
            chunks = chunk_text(doc.text, chunk_chars)
            labels, source = list(doc.labels), "given"
            if not labels and labeler is not None:
                labels, source = taxonomy.expand(x for chunk in labeler(chunks) for x in chunk), "voters"
            meta_labels = labels or [UNLABELLED]
            for i, chunk in enumerate(chunks):
                digest = hashlib.sha1(f"{doc.title}\n{chunk}\n{meta_labels}".encode()).hexdigest()[:16]
                rows.append(
                    (
                        f"{doc.id}#{i}",
                        chunk,
                        {
                            "doc_id": doc.id,
                            "title": doc.title,
                            "labels": meta_labels,
                            "label_source": source,
                            "hash": digest,
                        },
                    )
                )
        existing = self.collection.get(include=["metadatas"])
        old = {cid: meta.get("hash") for cid, meta in zip(existing["ids"], existing["metadatas"], strict=True)}
        wanted = {cid for cid, _, _ in rows}
        stale = [cid for cid in old if cid not in wanted]
        changed = [row for row in rows if old.get(row[0]) != row[2]["hash"]]
        for start in range(0, len(stale), batch_size):
            self.collection.delete(ids=stale[start : start + batch_size])
        for start in tqdm(range(0, len(changed), batch_size), desc="indexing", unit="batch", disable=not changed):
            batch = changed[start : start + batch_size]
            vectors = self.embedder.encode([self.passage_prefix + text for _, text, _ in batch])
            self.collection.upsert(
                ids=[r[0] for r in batch],
                documents=[r[1] for r in batch],
                metadatas=[r[2] for r in batch],
                embeddings=vectors.tolist(),
            )
        return {
            "docs": len(docs),
            "chunks": len(rows),
            "upserted": len(changed),
            "deleted": len(stale),
            "unchanged": len(rows) - len(changed),
        }
