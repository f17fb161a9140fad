"""Slow: the real EmbeddingGemma-300M, when `labelgate models build --encoder embeddinggemma-300m` has built it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.core.config import load_settings
from app.core.embedder import build_int8
from app.core.encoders_registry import GEMMA
from app.core.gemma import GEMMA_SOURCE

pytestmark = pytest.mark.slow
SENTENCES = ["今天天气怎么样", "明天会下雨吗", "帮我订一张去北京的机票"]


@pytest.fixture(scope="module")
def gemma_dir():  # type: ignore[no-untyped-def]
    settings = load_settings()
    folder = settings.model_dir / GEMMA.dirname
    if not (folder / "build.json").is_file():
        pytest.skip(f"EmbeddingGemma is not built in {settings.model_dir}: run `{GEMMA.build}` (optional, ~1.2 GB)")
    return settings.model_copy(update={"encoder_a": GEMMA.name}), folder


def test_the_build_is_the_pinned_zip(gemma_dir) -> None:  # type: ignore[no-untyped-def]
    _, folder = gemma_dir
    assert json.loads((folder / "build.json").read_text())["zip_sha256"] == GEMMA_SOURCE.zip_sha256
    assert (folder / "model.safetensors").stat().st_size == 1_211_486_072


def test_served_export_agrees_with_torch_and_separates_meanings(gemma_dir) -> None:  # type: ignore[no-untyped-def]
    from app.core.voters.encoders import HFEncoder
    from app.core.voters.onnx import OnnxEncoder

    settings, folder = gemma_dir
    prefix = settings.prompts(settings.encoder_a_id).classify
    reference = HFEncoder(str(folder), prefix=prefix).encode(SENTENCES)
    # the first values of the sentence-transformers pipeline's vector (Classification prompt), measured once
    np.testing.assert_allclose(reference[0, :5], [-0.1266, -0.0130, 0.0561, 0.0093, -0.0556], atol=2e-3)
    served = OnnxEncoder(str(folder), build_int8(settings, str(folder)), threads=1, prefix=prefix).encode(SENTENCES)
    assert float(np.min(np.sum(served * reference, axis=1))) > 0.97
    similarity = served @ served.T
    assert similarity[0, 1] > similarity[0, 2] and similarity[0, 1] > similarity[1, 2]
