"""`labelgate bench filter`: does a label-filtered Chroma search return what exact search over the filtered subset
returns? Recall@k of a metadata `where` filter on the whole collection (Chroma's own filtering) and of a per-label
partition collection (what `KnowledgeBase.search` does) against numpy brute force, at chosen selectivities."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.core.config import PARTITION_EF_SEARCH, Settings
from app.core.data import DemoData, load_examples
from app.core.errors import DataError
from app.core.kb import ephemeral_client, open_collection
from app.core.taxonomy import Taxonomy
from app.ops.eval.latency import percentiles

BATCH = 5000


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def random_vectors(n: int, dim: int = 384, seed: int = 13) -> np.ndarray:
    """Isotropic unit vectors: the worst case for HNSW (no cluster structure to navigate)."""
    return unit_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def subsets(n: int, selectivities: Sequence[float], seed: int = 13) -> dict[str, np.ndarray]:
    """For each selectivity s a label `s<s>` on a random s·n rows (uncorrelated with the vectors: the hard case)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in selectivities:
        if not 0 < s <= 1:
            raise ValueError(f"selectivity {s} is not in (0, 1]")
        out[f"s{s:g}"] = np.sort(rng.permutation(n)[: max(1, round(s * n))])
    return out


def exact_top(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int, tie: float = 1e-6) -> set[int]:
    """Ids (row numbers) of the k most cosine-similar rows among `rows`, plus any row tied with the k-th (duplicate
    chunks make the k-th place ambiguous; a search returning either twin is right)."""
    sims = vectors[rows] @ query
    if len(rows) <= k:
        return {int(r) for r in rows}
    kth = np.partition(-sims, k - 1)[k - 1]
    return {int(rows[i]) for i in np.nonzero(-sims <= kth + tie)[0]}


def _add(collection: Any, vectors: np.ndarray, ids: np.ndarray, metadatas: Sequence[dict[str, Any]] | None) -> None:
    for start in range(0, len(ids), BATCH):
        part = slice(start, start + BATCH)
        collection.add(
            ids=[str(i) for i in ids[part]],
            embeddings=vectors[ids[part]].tolist(),
            metadatas=list(metadatas[part]) if metadatas is not None else None,
        )


Search = Callable[[np.ndarray], set[int]]


def nearest(collection: Any, k: int, where: dict[str, Any] | None = None) -> Search:
    """Chroma's top-k row numbers for a query vector (optionally `where`-filtered)."""

    def search(q: np.ndarray) -> set[int]:
        extra = {"where": where} if where else {}
        found = collection.query(query_embeddings=[q.tolist()], n_results=k, include=[], **extra)
        return {int(x) for x in found["ids"][0]}

    return search


def exact(vectors: np.ndarray, rows: np.ndarray, k: int) -> Search:
    """Brute force over the subset's vectors (ties with the k-th included): the reference."""
    return lambda q: exact_top(vectors, rows, q, k)


def brute_force(vectors: np.ndarray, rows: np.ndarray, k: int) -> Search:
    """What a caller of exact search gets: the k best rows, no ties."""

    def search(q: np.ndarray) -> set[int]:
        sims = vectors[rows] @ q
        return {int(rows[i]) for i in np.argsort(-sims)[:k]}

    return search


def score(methods: dict[str, Search], queries: np.ndarray, truth: Search, k: int) -> dict[str, dict[str, float]]:
    """Mean recall@k against `truth` (which may hold ties beyond k) and latency percentiles of each method."""
    recall: dict[str, list[float]] = {name: [] for name in methods}
    ms: dict[str, list[float]] = {name: [] for name in methods}
    for q in queries:
        want = truth(q)
        for name, search in methods.items():
            started = time.perf_counter()
            found = search(q)
            ms[name].append((time.perf_counter() - started) * 1000)
            recall[name].append(min(1.0, len(found & want) / min(k, len(want))))
    return {name: {"recall_at_k": round(float(np.mean(recall[name])), 4), **percentiles(ms[name])} for name in methods}


def filter_recall(
    vectors: np.ndarray,
    queries: np.ndarray,
    selectivities: Sequence[float],
    *,
    k: int = 10,
    ef_search: int = PARTITION_EF_SEARCH,
    seed: int = 13,
) -> dict[str, Any]:
    """Per selectivity: recall@k and latency of `where` filtering, of a partition collection (default HNSW
    settings and with `ef_search` raised), and of exact numpy search on the partition's vectors."""
    vectors, queries = unit_rows(vectors), unit_rows(queries)
    members = subsets(len(vectors), selectivities, seed)
    labels_of: list[list[str]] = [[] for _ in range(len(vectors))]
    for label, rows in members.items():
        for i in rows:
            labels_of[i].append(label)
    client, tag = ephemeral_client(), uuid.uuid4().hex[:8]
    started = time.perf_counter()
    main = open_collection(client, f"fb-{tag}")  # cosine, Chroma's HNSW defaults (as the KB's main collection)
    made = [main]
    results: dict[str, Any] = {}
    try:
        _add(main, vectors, np.arange(len(vectors)), [{"labels": x or ["-"]} for x in labels_of])
        build_s = time.perf_counter() - started
        for label, rows in members.items():
            parts = {  # Chroma's defaults, and the partition as the KB opens it (ef_search raised)
                "partition": open_collection(client, f"fb-{tag}-{label}-d"),
                "partition_ef": open_collection(client, f"fb-{tag}-{label}-e", ef_search),
            }
            made += parts.values()
            for part in parts.values():
                _add(part, vectors, rows, None)
            methods = {"where": nearest(main, k, {"labels": {"$contains": label}})}
            methods |= {name: nearest(part, k) for name, part in parts.items()}
            methods["exact_numpy"] = brute_force(vectors, rows, k)
            results[label] = {"rows": len(rows)} | score(methods, queries, exact(vectors, rows, k), k)
    finally:
        for collection in made:
            client.delete_collection(collection.name)
    return {
        "chunks": len(vectors),
        "queries": len(queries),
        "k": k,
        "ef_search": ef_search,
        "build_seconds": round(build_s, 1),
        "by_selectivity": results,
    }


def stored_vectors(collection: Any, limit: int, page: int = BATCH) -> np.ndarray:
    """The first `limit` embeddings of a Chroma collection, read in pages."""
    rows: list[np.ndarray] = []
    for offset in range(0, limit, page):
        got = collection.get(include=["embeddings"], limit=min(page, limit - offset), offset=offset)
        if not len(got["ids"]):
            break
        rows.append(np.asarray(got["embeddings"], dtype=np.float32))
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def real_vectors(settings: Settings, chunks: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The e5 vectors of the grown KB `labelgate bench --chunks N` keeps, and the demo queries embedded as queries."""
    from app.core.embedder import load_embedder
    from app.core.kb import make_client
    from app.ops.eval.filler import grown_name

    client = make_client(settings.model_copy(update={"home": settings.home / "bench", "chroma_url": None}))
    name = grown_name(settings, chunks)
    if name not in {c.name for c in client.list_collections()}:
        raise DataError(f"no grown KB {name!r}: run `labelgate bench --chunks {chunks}` first (it builds and keeps it)")
    base = stored_vectors(client.get_collection(name), chunks)
    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    texts = [ex.text for split in ("test", "dev", "train") for ex in load_examples(data.split(split), taxonomy)]
    embedder = load_embedder(settings)
    return base, embedder.encode([settings.query_prefix + t for t in texts[:queries]])
