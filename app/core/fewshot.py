"""The few-shot example store: reviewed, labelled queries (the train split + feedback people or rules confirmed),
embedded once with the retrieval embedder; `nearest()` gives the extractor its examples and the kNN vote its evidence.

The pure parts — top-k selection, latest-per-text dedupe, the similarity-weighted kNN vote — are functions over plain
data, property-tested in tests/unit/app/core/test_fewshot.py.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.core.data import Example
from app.core.feedback import FEEDBACK, TRAINING_SOURCES, FeedbackStore
from app.core.taxonomy import Taxonomy
from app.core.voters.encoders import TextEncoder

log = logging.getLogger(__name__)
TRAIN_SOURCE = "train"
# the kNN vote's k and temperature: near-best exact set on the demo dev split's escalated rows (0.525; τ 0.01: 0.535)
KNN_K = 5
KNN_TEMPERATURE = 0.02


@dataclass(frozen=True)
class Shot:
    """One reviewed example: query text, its labels (expanded with coarse parents), where it came from
    (train | human | llm+rules) and, from nearest(), its cosine similarity to the query."""

    text: str
    labels: tuple[str, ...]
    source: str = TRAIN_SOURCE
    similarity: float = 0.0


def top_k(similarities: Sequence[float] | np.ndarray, k: int, *, exclude: Collection[int] = ()) -> list[int]:
    """Indices of the k highest similarities, highest first (ties: lower index first), skipping `exclude`."""
    sims = np.asarray(similarities, dtype=float)
    if k <= 0 or sims.size == 0:
        return []
    order = np.lexsort((np.arange(sims.size), -sims))  # by -similarity, then by index
    picked: list[int] = []
    for index in order:
        if int(index) in exclude:
            continue
        picked.append(int(index))
        if len(picked) == k:
            break
    return picked


def latest_per_text(shots: Iterable[Shot]) -> list[Shot]:
    """One shot per (stripped) text: a later shot replaces an earlier one's labels and source, keeping its position —
    feedback confirmed after the train split was written wins, as in retraining."""
    by_text: dict[str, Shot] = {}
    for shot in shots:
        key = shot.text.strip()
        by_text[key] = replace(shot, text=key)
    return list(by_text.values())


@dataclass(frozen=True)
class KnnVote:
    """labels: those whose weighted share reaches `accept`; scores: every label's share; support: the weakest accepted
    share (0.0 with none); margin: support minus the strongest rejected share; top_similarity: the nearest example's."""

    labels: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    support: float = 0.0
    margin: float = -1.0
    top_similarity: float = 0.0


def knn_weights(similarities: Sequence[float], *, temperature: float) -> list[float]:
    """exp((s - max s) / temperature): the nearest example weighs 1, one `temperature` further away 1/e."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if not similarities:
        return []
    top = max(similarities)
    return [math.exp((s - top) / temperature) for s in similarities]


def knn_vote(
    neighbours: Sequence[tuple[Sequence[str], float]], *, temperature: float = 0.05, accept: float = 0.5
) -> KnnVote:
    """Similarity-weighted vote of the neighbours' label sets: a label's score is the weight share of the neighbours
    carrying it. Order-independent; an exact match (similarity 1) outweighs any number of neighbours more than
    temperature·ln(k) further away, so a label only those carry is never accepted over it."""
    if not neighbours:
        return KnnVote([])
    weights = knn_weights([float(s) for _, s in neighbours], temperature=temperature)
    total = sum(weights)
    scores: dict[str, float] = {}
    for (labels, _), weight in zip(neighbours, weights, strict=True):
        for label in set(labels):
            scores[label] = scores.get(label, 0.0) + weight / total
    accepted = sorted(label for label, score in scores.items() if score >= accept)
    rejected = [score for label, score in scores.items() if label not in accepted]
    support = min((scores[label] for label in accepted), default=0.0)
    margin = (support - max(rejected, default=0.0)) if accepted else -1.0
    top = max(float(s) for _, s in neighbours)
    return KnnVote(accepted, dict(sorted(scores.items())), support, margin, top)


def knn_vote_shots(shots: Sequence[Shot], taxonomy: Taxonomy, **kw: Any) -> KnnVote:
    """knn_vote over nearest() results, labels in taxonomy order (with coarse parents)."""
    vote = knn_vote([(shot.labels, shot.similarity) for shot in shots], **kw)
    return replace(vote, labels=taxonomy.expand(vote.labels))


def encoder_key(encoder: TextEncoder, prefix: str) -> str:
    """What identifies an embedding: the encoder's spec, size, weights file (int8 exports name their weights) and
    the prefix."""
    inner = getattr(encoder, "inner", encoder)
    return f"{type(inner).__name__}\0{encoder.spec}\0{encoder.dim}\0{getattr(inner, 'path', '')}\0{prefix}"


def rows_digest(key: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha1(key.encode("utf-8"))
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8"))
    return digest.hexdigest()


class ExampleStore:
    """Reviewed examples and their vectors. Built on first use (or warm()); the base rows' matrix is cached on disk
    under `cache_dir` keyed by the embedder and the rows' content, so a process start embeds nothing it embedded
    before. Feedback rows recorded later (human, llm+rules) are picked up by id on each nearest() and embedded one
    by one, without a rebuild; a newer confirmation of a known text replaces its labels."""

    def __init__(
        self,
        encoder: TextEncoder,
        taxonomy: Taxonomy,
        *,
        base: Sequence[Example] = (),
        feedback: FeedbackStore | None = None,
        prefix: str = "",
        cache_dir: Path | None = None,
        sources: Collection[str] = TRAINING_SOURCES,
    ) -> None:
        self.encoder, self.taxonomy, self.prefix, self.cache_dir = encoder, taxonomy, prefix, cache_dir
        self.feedback, self.sources = feedback, tuple(sources)
        self._base = [Shot(ex.text, tuple(taxonomy.expand(ex.labels))) for ex in base]
        self._lock = threading.Lock()
        self._shots: list[Shot] = []
        self._index: dict[str, int] = {}
        self._matrix = np.zeros((0, encoder.dim), dtype=np.float32)
        self._last_feedback_id = 0
        self._built = False

    def __len__(self) -> int:
        self._ensure()
        return len(self._shots)

    def embed(self, text: str) -> np.ndarray:
        """The query's vector as the examples were embedded (the encoder's cache serves retrieval the same one)."""
        return np.asarray(self.encoder.encode([self.prefix + text])[0], dtype=np.float32)

    def warm(self) -> ExampleStore:
        self._ensure()
        return self

    def _encode_many(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{rows_digest(encoder_key(self.encoder, self.prefix), texts)}.npy"
            if path.is_file():
                cached = np.load(path)
                if cached.shape == (len(texts), self.encoder.dim):
                    return cached.astype(np.float32)
        vectors = np.asarray(self.encoder.encode([self.prefix + text for text in texts]), dtype=np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(f".{threading.get_ident()}.tmp.npy")
            np.save(scratch, vectors)
            scratch.replace(path)
        return vectors

    def _ensure(self) -> None:
        if self._built:
            self.sync()
            return
        with self._lock:
            if self._built:
                return
            shots = latest_per_text(self._base)
            self._matrix = self._encode_many([shot.text for shot in shots])
            self._shots = shots
            self._index = {shot.text: i for i, shot in enumerate(shots)}
            self._built = True
            log.info("few-shot store: %d examples from the train split", len(shots))
        self.sync()

    def _new_feedback(self) -> list[tuple[int, Shot]]:
        if self.feedback is None:
            return []
        import sqlalchemy as sa

        query = (
            sa.select(FEEDBACK.c.id, FEEDBACK.c.query, FEEDBACK.c.labels, FEEDBACK.c.source)
            .where(FEEDBACK.c.id > self._last_feedback_id, FEEDBACK.c.source.in_(self.sources))
            .order_by(FEEDBACK.c.id)
        )
        try:
            with self.feedback.engine.connect() as conn:
                rows = list(conn.execute(query))
        except sa.exc.SQLAlchemyError as exc:  # few-shot examples are a help, never a reason to fail a query
            log.warning("few-shot store: feedback rows not read (%s)", str(exc).splitlines()[0])
            return []
        shots = []
        for row_id, text, labels, source in rows:
            known, unknown = self.taxonomy.split_known(labels if isinstance(labels, list) else [])
            if unknown or not known or not str(text).strip():
                log.warning("few-shot store: feedback #%s skipped (labels %s not in the taxonomy)", row_id, unknown)
                continue
            shots.append((int(row_id), Shot(str(text), tuple(self.taxonomy.expand(known)), str(source))))
        return shots

    def sync(self) -> int:
        """Add feedback rows recorded since the last sync; returns how many examples were added or relabelled."""
        with self._lock:
            rows = self._new_feedback()
            if not rows:
                return 0
            fresh = [shot for shot in latest_per_text(shot for _, shot in rows) if shot.text not in self._index]
            vectors = self._encode_many([shot.text for shot in fresh]) if len(fresh) > 1 else None
            for _, shot in rows:
                self._put(shot, vectors, fresh)
            self._last_feedback_id = rows[-1][0]
            return len(rows)

    def add(self, text: str, labels: Sequence[str], source: str) -> None:
        """One confirmed example now (a caller that knows of it before the store syncs)."""
        known, _ = self.taxonomy.split_known(labels)
        if not known or not text.strip():
            return
        self._ensure()
        with self._lock:
            self._put(Shot(text.strip(), tuple(self.taxonomy.expand(known)), source), None, [])

    def _put(self, shot: Shot, vectors: np.ndarray | None, batch: Sequence[Shot]) -> None:
        text = shot.text.strip()
        shot = replace(shot, text=text)
        if text in self._index:  # a newer confirmation: same vector, new labels
            self._shots[self._index[text]] = shot
            return
        position = next((i for i, other in enumerate(batch) if other.text == text), None)
        vector = vectors[position] if vectors is not None and position is not None else self.embed(text)
        self._index[text] = len(self._shots)
        self._shots.append(shot)
        self._matrix = np.vstack([self._matrix, vector[None, :].astype(np.float32)])

    def nearest(self, vector: np.ndarray, k: int, *, exclude_text: str | None = None) -> list[Shot]:
        """The k most similar examples (cosine: vectors are L2-normalised), most similar first, never the query's
        own text."""
        self._ensure()
        with self._lock:
            matrix, shots, index = self._matrix, list(self._shots), dict(self._index)
        if not shots or k <= 0:
            return []
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        own = index.get(exclude_text.strip()) if exclude_text is not None else None
        picked = top_k(sims, k, exclude=() if own is None else (own,))
        return [replace(shots[i], similarity=round(float(sims[i]), 4)) for i in picked]

    def nearest_text(self, text: str, k: int) -> list[Shot]:
        return self.nearest(self.embed(text), k, exclude_text=text)

    def counts(self) -> Mapping[str, int]:
        """Examples per source (train, human, llm+rules)."""
        self._ensure()
        with self._lock:
            counts: dict[str, int] = {}
            for shot in self._shots:
                counts[shot.source] = counts.get(shot.source, 0) + 1
        return counts


@dataclass(frozen=True)
class ThirdOpinion:
    """When the kNN vote may settle an escalation: its label set equals one voter's accepted set (both expanded), its
    weakest accepted label holds at least `min_support` of the weight, the nearest example is at least
    `min_similarity` alike, and every escalation reason is one of `overridable` (never out_of_scope)."""

    min_support: float = 0.8
    min_similarity: float = 0.0
    overridable: frozenset[str] = frozenset({"low_margin", "fine_disagree"})


def third_opinion(
    accepted_a: Collection[str],
    accepted_b: Collection[str],
    reasons: Iterable[str],
    knn: KnnVote,
    rule: ThirdOpinion = ThirdOpinion(),
) -> list[str] | None:
    """The labels to decide automatically on an escalated query, or None (it stays escalated). Reasons are the vote's
    (`A:low_margin`, `fine_disagree`, …); the voter prefix is ignored when matching `overridable`."""
    kinds = {reason.split(":", 1)[-1] for reason in reasons}
    if not kinds or not kinds <= rule.overridable:
        return None
    if not knn.labels or knn.support < rule.min_support or knn.top_similarity < rule.min_similarity:
        return None
    wanted = set(knn.labels)
    if wanted == set(accepted_a) or wanted == set(accepted_b):
        return list(knn.labels)
    return None
