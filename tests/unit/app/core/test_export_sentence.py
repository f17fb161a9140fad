"""ONNX export of a sentence-transformers folder (as EmbeddingGemma's: a Gemma3 encoder with bidirectional
sliding/full attention, mean pooling, two bias-free dense layers, normalize) on a tiny random-init Gemma3: the ONNX
vectors equal torch's, fp32 or int8, and a text's vector does not depend on its length being the traced one."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from app.core.errors import ModelNotBuiltError
from app.core.voters.encoders import HFEncoder, sentence_head
from app.testing import build_tiny_encoder


def build_tiny_gemma(out: Path, *, dense: tuple[int, ...] = (48, 24)) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import Gemma3TextConfig, Gemma3TextModel

    build_tiny_encoder(out)  # for its tokenizer; the Bert weights are replaced below
    (out / "model.safetensors").unlink()
    vocab = len(json.loads((out / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=64,
        max_position_embeddings=128,
        use_bidirectional_attention=True,
        pad_token_id=0,
    )
    Gemma3TextModel(config).save_pretrained(str(out))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    sizes = (32, *dense)
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=2):
        folder = out / f"{i}_Dense"
        folder.mkdir()
        config_dense = {"in_features": n_in, "out_features": n_out, "bias": False}
        (folder / "config.json").write_text(
            json.dumps(config_dense | {"activation_function": "torch.nn.modules.linear.Identity"})
        )
        save_file({"linear.weight": torch.randn(n_out, n_in) / n_in**0.5}, str(folder / "model.safetensors"))
        modules.append({"idx": i, "name": str(i), "path": folder.name, "type": "sentence_transformers.models.Dense"})
    modules.append({"idx": 9, "name": "9", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"})
    (out / "modules.json").write_text(json.dumps(modules))
    return out


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma") / "embeddinggemma-300m")


TEXTS = ["屏幕碎了能保修吗", "以旧换新", "电池续航差，充电很慢，怎么办呢"]


@pytest.mark.parametrize("quantize", [False, True])
def test_onnx_export_matches_torch(tiny_gemma: Path, tmp_path: Path, quantize: bool) -> None:
    from app.core.voters.export import export_encoder_int8
    from app.core.voters.onnx import OnnxEncoder

    torch_vectors = HFEncoder(str(tiny_gemma), prefix="task: x | ").encode(TEXTS)
    assert torch_vectors.shape == (3, 24)  # the last dense layer's size
    path = export_encoder_int8(str(tiny_gemma), tmp_path / "tiny.onnx", quantize=quantize)
    onnx = OnnxEncoder(str(tiny_gemma), path, threads=1, prefix="task: x | ")
    vectors = onnx.encode(TEXTS)  # lengths other than the traced sample's
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    agreement = np.sum(vectors * torch_vectors, axis=1)
    assert float(agreement.min()) > (0.98 if quantize else 0.99999)


def test_the_head_is_what_sentence_transformers_describes(tiny_gemma: Path, tiny_encoder_dir: Path) -> None:
    import torch

    assert len(sentence_head(str(tiny_encoder_dir))) == 0  # a plain checkpoint: mean pooling only
    head = sentence_head(str(tiny_gemma))
    assert [layer.weight.shape for layer in head] == [torch.Size([48, 32]), torch.Size([24, 48])]


def test_an_unsupported_pooling_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_gemma(tmp_path / "cls-pooled", dense=())
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(ModelNotBuiltError, match="only mean pooling"):
        sentence_head(str(folder))
