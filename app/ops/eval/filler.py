"""A grown knowledge base for benchmarks: the demo docs plus synthetic filler chunks made of real sentences (any
*.jsonl "text" fields under the corpus dirs), spread round-robin over the fine labels, embedded by the real embedder."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.data import DemoData, Doc, load_docs
from app.core.embedder import open_kb
from app.core.errors import DataError
from app.core.fileio import iter_jsonl
from app.core.kb import KnowledgeBase, make_client
from app.core.taxonomy import Taxonomy
from app.core.voters.encoders import TextEncoder

MIN_SENTENCES = 1000


def corpus_sentences(dirs: Sequence[Path]) -> list[str]:
    """Distinct non-empty "text" values of every *.jsonl under the dirs, in a stable order."""
    seen: dict[str, None] = {}
    for root in dirs:
        for path in sorted(Path(root).rglob("*.jsonl")):
            for _, row in iter_jsonl(path):
                text = row.get("text")
                if isinstance(text, str) and text.strip():
                    seen.setdefault(text.strip(), None)
    if len(seen) < MIN_SENTENCES:
        raise DataError(f"filler corpus {[str(d) for d in dirs]}: {len(seen)} sentences, need {MIN_SENTENCES}")
    return list(seen)


def filler_docs(
    count: int, sentences: Sequence[str], taxonomy: Taxonomy, *, chunk_chars: int, seed: int = 7
) -> Iterator[Doc]:
    """`count` one-chunk docs of 2–6 sentences (≤ chunk_chars), label i cycling over the fine labels."""
    rng = random.Random(seed)
    fine = taxonomy.fine_ids or taxonomy.ids
    for i in range(count):
        text = ""
        for _ in range(rng.randint(2, 6)):
            sentence = rng.choice(sentences)
            if text and len(text) + len(sentence) + 1 > chunk_chars:
                break
            text = f"{text} {sentence}".strip()
        label = fine[i % len(fine)]
        yield Doc(f"F{i:06d}", text[:chunk_chars], tuple(taxonomy.expand([label])), f"filler {i}")


def grown_name(settings: Settings, chunks: int) -> str:
    """The grown KB's collection, one per size (another embedder re-embeds it: the chunk hashes name the embedder)."""
    return f"{settings.collection}-grown-{chunks}"


def grown_kb(
    settings: Settings, embedder: TextEncoder, chunks: int, corpus: Sequence[Path], *, client: Any = None
) -> tuple[KnowledgeBase, dict[str, Any]]:
    """The demo KB grown to `chunks` chunks in its own collection (persisted under home/bench unless a client is
    given); an existing build is synced, not redone. Returns the KB and the indexing stats with chunks/s."""
    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    docs = load_docs(data.docs, taxonomy)
    docs += list(
        filler_docs(max(0, chunks - len(docs)), corpus_sentences(corpus), taxonomy, chunk_chars=settings.chunk_chars)
    )
    if client is None:
        client = make_client(settings.model_copy(update={"home": settings.home / "bench", "chroma_url": None}))
    kb = open_kb(settings, client, embedder, grown_name(settings, chunks))
    started = time.perf_counter()
    stats = kb.index(docs, taxonomy, chunk_chars=settings.chunk_chars)
    seconds = time.perf_counter() - started
    rate = stats["upserted"] / seconds if stats["upserted"] else None
    return kb, stats | {"seconds": round(seconds, 1), "chunks_per_s": round(rate, 1) if rate else None}
