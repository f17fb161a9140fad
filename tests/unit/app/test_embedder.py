"""Retrieval embedder on int8 ONNX Runtime: exported once, the same vector for a text alone or in a list."""

from __future__ import annotations

import numpy as np

from app.embedder import build_int8, int8_path, load_embedder
from app.voters.encoders import HFEncoder


def test_int8_embedder_is_built_once_and_close_to_torch(settings, tiny_encoder_dir) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"embedder": str(tiny_encoder_dir)})
    path = build_int8(settings)
    assert path == int8_path(settings) and path.is_file()
    stamp = path.stat().st_mtime_ns
    embedder = load_embedder(settings)
    assert path.stat().st_mtime_ns == stamp  # reused, not exported again
    texts = ["屏幕碎了能保修吗", "以旧换新怎么算", "电池续航差"]
    together = embedder.encode(texts)
    alone = np.stack([embedder.encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    reference = HFEncoder(str(tiny_encoder_dir)).encode(texts)
    assert float(np.min(np.sum(together * reference, axis=1))) > 0.95


def test_torch_runtime_and_a_new_checkpoint_get_their_own_export(settings, tiny_encoder_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"embedder": str(tiny_encoder_dir), "embedder_runtime": "torch"})
    assert isinstance(load_embedder(settings), HFEncoder)
    other = settings.model_copy(update={"embedder": str(tmp_path / "elsewhere")})
    assert int8_path(other) != int8_path(settings)
