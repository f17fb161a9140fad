"""The retrieval embedder: the e5 checkpoint on int8 ONNX Runtime (exported once into the model cache) or on torch."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from app.config import Settings
from app.voters.encoders import HFEncoder, TextEncoder, check_model_path

log = logging.getLogger(__name__)


def int8_path(settings: Settings) -> Path:
    """Where the int8 export of the embedder lives; the name changes with the checkpoint's spec and weights."""
    spec = settings.embedder_id
    stamp = spec
    for weights in ("model.safetensors", "pytorch_model.bin"):
        file = Path(spec).expanduser() / weights
        if file.is_file():
            stamp += f":{file.stat().st_size}:{int(file.stat().st_mtime)}"
    slug = Path(spec.rstrip("/")).name or "embedder"
    return settings.model_dir / "onnx" / f"{slug}-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}.int8.onnx"


def build_int8(settings: Settings) -> Path:
    """Export the embedder to int8 ONNX unless the export exists (idempotent; ~30 s for e5-small on 2 cores)."""
    from app.voters.onnx import export_encoder_int8

    path = int8_path(settings)
    if not path.is_file():
        check_model_path(settings.embedder_id)
        log.info("exporting the retrieval embedder to int8 ONNX: %s", path)
        export_encoder_int8(settings.embedder_id, path)
    return path


def load_embedder(settings: Settings) -> TextEncoder:
    """The configured retrieval embedder; the int8 export is built on first use."""
    if settings.embedder_runtime == "torch":
        return HFEncoder(settings.embedder_id)
    from app.voters.onnx import OnnxEncoder

    return OnnxEncoder(settings.embedder_id, build_int8(settings), threads=settings.threads)
