"""`labelgate index`: the demo knowledge base into Chroma, docs without labels labelled by the voters."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.config import Settings
from app.data import DemoData, count_docs, iter_docs
from app.decision import vote
from app.embedder import load_embedder, open_kb
from app.kb import KnowledgeBase, Labeler, make_client
from app.kb_generations import index_atomically
from app.taxonomy import Taxonomy
from app.voters.base import Voter


def voter_labeler(voters: Sequence[Voter], taxonomy: Taxonomy, settings: Settings) -> Labeler:
    """Chunk labels from the two voters: the agreed labels, or every label either voter accepts when they differ."""

    def label(texts: Sequence[str]) -> list[list[str]]:
        outs = [voter.outputs(texts) for voter in voters]
        return [
            vote(
                a, b, taxonomy, min_margin=settings.vote.min_margin, min_fine_agreement=settings.vote.min_fine_agreement
            ).labels
            for a, b in zip(*outs, strict=True)
        ]

    return label


def fingerprint(inputs: Sequence[object]) -> str:
    """A hash of what an index is built from: files by content, anything else by its text."""
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            with item.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(str(item).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def index_knowledge_base(
    settings: Settings,
    *,
    docs_path: Path | None = None,
    kb: KnowledgeBase | None = None,
    voters: Sequence[Voter] | None = None,
) -> dict[str, Any]:
    """Sync the knowledge base with the docs file (idempotent); returns counts. The file is validated whole first (a
    bad row changes nothing), then streamed: memory does not grow with the KB. Built as a new generation that serves
    only once complete (app/kb_generations.py); a passed-in `kb` is synced in place."""
    from app.voters.store import load_pair

    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    path = docs_path or data.docs
    total, unlabelled = count_docs(path, taxonomy)
    serving = kb or open_kb(settings, make_client(settings), load_embedder(settings))
    labeler = None
    if unlabelled:
        voters = voters or load_pair(settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime)
        labeler = voter_labeler(voters, taxonomy, settings)
    docs = iter_docs(path, taxonomy)
    if kb is not None:  # a caller's own KB: synced in place
        return kb.index(docs, taxonomy, chunk_chars=settings.chunk_chars, labeler=labeler, total=total) | {
            "total": kb.count()
        }
    inner = getattr(serving.embedder, "inner", serving.embedder)  # as the chunk hashes name it
    inputs = [path, data.taxonomy, settings.chunk_chars, serving.passage_prefix, f"{inner.spec}:{type(inner).__name__}"]
    inputs += [f"{voter.name}:{voter.version}" for voter in voters or []]  # they label the unlabelled docs
    counts = index_atomically(
        serving,
        settings.collection,
        docs,
        taxonomy,
        chunk_chars=settings.chunk_chars,
        labeler=labeler,
        total=total,
        fingerprint=fingerprint(inputs),
    )
    built = KnowledgeBase.open(serving.client, counts["generation"], serving.embedder, create=False, follow=False)
    return counts | {"total": built.count()}
