"""Retrieval embedder on int8 ONNX Runtime: exported once, the same vector for a text alone or in a list."""

from __future__ import annotations

import numpy as np

from app.core.embedder import build_int8, int8_path, load_embedder, open_kb
from app.core.voters.encoders import CachedEncoder, HFEncoder


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
    assert isinstance(load_embedder(settings).inner, HFEncoder)  # type: ignore[attr-defined]
    other = settings.model_copy(update={"embedder": str(tmp_path / "elsewhere")})
    assert int8_path(other) != int8_path(settings)


class Counting:
    spec, dim = "counting", 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_cached_encoder_embeds_a_query_once_and_stays_bounded() -> None:
    inner = Counting()
    cached = CachedEncoder(inner, size=2)
    first = cached.encode(["屏幕碎了"])
    first[0, 0] = -1  # callers may scribble on what they get
    np.testing.assert_array_equal(cached.encode(["屏幕碎了"]), [[4, 1]])
    assert inner.calls == [["屏幕碎了"]] and (cached.hits, cached.misses) == (1, 1)
    cached.encode(["a", "b"])  # lists (indexing) pass through, uncached
    cached.encode(["b"]), cached.encode(["c"]), cached.encode(["屏幕碎了"])
    assert inner.calls[-1] == ["屏幕碎了"]  # evicted after two newer queries


def test_use_as_embedder_is_voter_bs_encoder_without_prefixes(settings, chroma_client, collection_name) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"embedder": "usem3"})
    shared = {"usem3": CachedEncoder(Counting())}
    shared["usem3"].spec = "usem3"
    embedder = load_embedder(settings, shared)
    assert embedder is shared["usem3"]
    kb = open_kb(settings, chroma_client, embedder, collection_name)
    assert (kb.query_prefix, kb.passage_prefix) == ("", "")
    e5 = open_kb(settings.model_copy(update={"embedder": ""}), chroma_client, Counting(), collection_name)
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
