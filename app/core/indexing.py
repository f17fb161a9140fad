"""`labelgate index`: the demo knowledge base into Chroma, docs without labels labelled by the voters."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.data import DemoData, Doc, count_docs, iter_docs
from app.core.decision import vote
from app.core.doclabels import DocLabels, label_doc, merge_chunks
from app.core.docreviews import DocReviewQueue, review_item, reviewed_doc_labels
from app.core.embedder import load_embedder, open_kb
from app.core.feedback import FeedbackStore
from app.core.kb import KnowledgeBase, make_client
from app.core.kb_generations import index_atomically
from app.core.llm import make_chat_model
from app.core.llm_doclabels import LabelCache, LlmDocLabeler
from app.core.rules import RuleSet
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter

log = logging.getLogger(__name__)


class VoterLabeler:
    """Labels for docs their authors did not label. Called with chunk texts: each chunk's vote (the agreed labels, or
    every label either voter accepts when they differ). `label_docs`: each doc as a whole, with a confidence
    (app/core/doclabels.py: chunk probabilities averaged per voter, agreement decides how sure; rule hits confirm; the
    LLM, when configured, is asked about the docs the voters are unsure of and its answer is a third opinion)."""

    def __init__(
        self,
        voters: Sequence[Voter],
        taxonomy: Taxonomy,
        settings: Settings,
        rules: RuleSet | None = None,
        llm: LlmDocLabeler | None = None,
    ):
        self.voters, self.taxonomy, self.settings, self.rules, self.llm = list(voters), taxonomy, settings, rules, llm
        self.unsure: list[dict[str, Any]] = []  # docs labelled below `doc_review_below`: review items

    def decided(self, doc: Doc, found: DocLabels) -> None:
        """Called by the KB for each doc it labelled: unsure ones become doc reviews."""
        if found.confidence < self.settings.doc_review_below:
            self.unsure.append(review_item(doc.id, doc.title, doc.text, found, self.taxonomy))

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        cfg = self.settings.vote
        outs = [voter.outputs(texts) for voter in self.voters]
        return [
            vote(a, b, self.taxonomy, min_margin=cfg.min_margin, min_fine_agreement=cfg.min_fine_agreement).labels
            for a, b in zip(*outs, strict=True)
        ]

    def label_docs(self, docs: Sequence[Doc], chunks: Sequence[Sequence[str]]) -> list[DocLabels]:
        """Each doc (its chunk texts, under its title) labelled as a whole, with a confidence; the chunks of all docs
        in one call."""
        cfg = self.settings.vote
        flat = [chunk for texts in chunks for chunk in texts]
        outs = [voter.outputs(flat) for voter in self.voters] if flat else [[] for _ in self.voters]
        found, start = [], 0
        for doc, texts in zip(docs, chunks, strict=True):
            views = [merge_chunks(out[start : start + len(texts)]) for out in outs]
            start += len(texts)
            ruled = [x for hit in self.rules.hits(" ".join(texts)) for x in hit.labels] if self.rules else []
            decide = partial(
                label_doc,
                views,
                self.taxonomy,
                min_margin=cfg.min_margin,
                min_fine_agreement=cfg.min_fine_agreement,
                rule_labels=ruled,
            )
            labels = decide()
            if self.llm is not None and labels.confidence < self.settings.doc_review_below:
                labels = decide(llm_labels=self.llm(doc.title, doc.text))
            found.append(labels)
        return found


def voter_labeler(
    voters: Sequence[Voter],
    taxonomy: Taxonomy,
    settings: Settings,
    rules: RuleSet | None = None,
    llm: LlmDocLabeler | None = None,
) -> VoterLabeler:
    return VoterLabeler(voters, taxonomy, settings, rules, llm)


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
    only once complete (app/core/kb_generations.py); a passed-in `kb` is synced in place."""
    from app.core.voters.store import load_pair

    data = DemoData(settings.data_dir)
    taxonomy = Taxonomy.load(data.taxonomy)
    path = docs_path or data.docs
    total, unlabelled = count_docs(path, taxonomy)
    serving = kb or open_kb(settings, make_client(settings), load_embedder(settings))
    labeler = None
    if unlabelled:
        voters = voters or load_pair(settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime)
        rules = RuleSet.load(data.rules, taxonomy) if data.rules.is_file() else None
        labeler = voter_labeler(voters, taxonomy, settings, rules, doc_llm(settings, taxonomy))
    store = FeedbackStore(settings.feedback_db_url) if unlabelled else None
    reviewed = reviewed_doc_labels(store) if store is not None else {}  # a person's labels for once-unsure docs
    docs: Iterable[Doc] = (
        Doc(d.id, d.text, tuple(taxonomy.expand(reviewed[d.id])), d.title) if not d.labels and d.id in reviewed else d
        for d in iter_docs(path, taxonomy)
    )
    if kb is not None:  # a caller's own KB: synced in place
        synced = kb.index(docs, taxonomy, chunk_chars=settings.chunk_chars, labeler=labeler, total=total)
        return synced | {"total": kb.count()} | queue_unsure(settings, labeler)
    inner = getattr(serving.embedder, "inner", serving.embedder)  # as the chunk hashes name it
    inputs = [path, data.taxonomy, settings.chunk_chars, serving.passage_prefix, f"{inner.spec}:{type(inner).__name__}"]
    inputs += [f"{voter.name}:{voter.version}" for voter in voters or []]  # they label the unlabelled docs
    inputs += [f"reviewed:{doc_id}:{sorted(labels)}" for doc_id, labels in sorted(reviewed.items())]
    inputs += [f"llm:{labeler.llm.model}"] if labeler is not None and labeler.llm is not None else []
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
    return counts | {"total": built.count()} | queue_unsure(settings, labeler)


def doc_llm(settings: Settings, taxonomy: Taxonomy) -> LlmDocLabeler | None:
    """The LLM's doc labeller when `index_llm` is on and an LLM is configured (else None: the voters and rules
    decide alone); its answers are cached in home by content hash."""
    if not settings.index_llm:
        return None
    llm = make_chat_model(settings)
    if llm is None:
        log.warning("index_llm is on but no LLM is configured: docs are labelled by the voters and rules alone")
        return None
    cache = LabelCache(settings.home / "llm_doc_labels.sqlite")
    return LlmDocLabeler(llm, taxonomy, cache, model=settings.llm_model)


def doc_review_queue(settings: Settings) -> DocReviewQueue:
    return DocReviewQueue(settings.home / "reviews" / "docs.jsonl")


def queue_unsure(settings: Settings, labeler: VoterLabeler | None) -> dict[str, int]:
    """Queue the docs the voters labelled unsure for review; their counts for the index summary."""
    if labeler is None or not labeler.unsure:
        return {"doc_reviews_added": 0}
    pending = doc_review_queue(settings).put(labeler.unsure)
    return {"doc_reviews_added": len(labeler.unsure), "doc_reviews_pending": pending}
