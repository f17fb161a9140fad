"""Export to int8 ONNX (training side, needs torch): voter A's merged LoRA encoder + head, or a plain sentence encoder
(mean pooled, L2-normalised) for retrieval. `app.core.voters.onnx` runs the files."""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from app.core.voters.encoders import mean_pool, sentence_head
from app.core.voters.heads import PooledClassifier

_PREPROCESS_HINT = "Please consider to run pre-processing before quantization"


@contextlib.contextmanager
def _quiet_root(prefix: str) -> Iterator[None]:
    """onnxruntime's quantiser logs a generic hint on the root logger; drop just that line."""
    drop = logging.Filter()
    drop.filter = lambda record: not str(record.msg).startswith(prefix)  # type: ignore[method-assign,assignment]
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


class _Logits(torch.nn.Module):
    def __init__(self, model: PooledClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask)["logits"]


def _export_quantized(
    module: torch.nn.Module, tokenizer: Any, out: Path, output: str, *, quantize: bool = True
) -> Path:
    """Trace `module(input_ids, attention_mask)` to ONNX and quantise MatMul weights (int8 per channel) and the token
    embedding table (Gather, int8): e5-small's 250k-token table is most of the file (388 → 112 MB), at no measured cost
    in retrieval recall (CHIP-STS recall@10 0.450 → 0.447). `quantize=False` keeps the fp32 graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sample = tokenizer(["query: 样例"], return_tensors="pt")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_root(_PREPROCESS_HINT):
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent branches: shapes are dynamic axes here
        fp32 = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        if not quantize:
            shutil.move(str(fp32), str(partial))  # the scratch folder may be on another file system
            partial.replace(out)
            return out
        quantize_dynamic(
            str(fp32),
            str(partial),
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
        partial.replace(out)
    return out


def export_int8(model: PooledClassifier, tokenizer: Any, out: Path) -> Path:
    """Export `model` (a PeftModel encoder is merged on a copy; the original is untouched) and quantise it to `out`."""
    merged: Any = copy.deepcopy(model.encoder)
    if hasattr(merged, "merge_and_unload"):  # a PeftModel while training
        merged = merged.merge_and_unload()
    plain = PooledClassifier(merged, model.head.in_features, model.head.out_features)
    plain.head.load_state_dict(model.head.state_dict())
    plain.eval()
    return _export_quantized(_Logits(plain), tokenizer, out, "logits")


class _Embedding(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.layer_types = sorted(set(getattr(encoder.config, "layer_types", None) or ()))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask: Any = attention_mask
        if self.layer_types:  # Gemma3: its own mask builder does not trace (vmap); give each layer type the padding
            # mask as an additive bias. Bidirectional, and served texts stay shorter than the 512-token sliding window
            bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            mask = dict.fromkeys(self.layer_types, bias)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        return torch.nn.functional.normalize(self.head(mean_pool(hidden, attention_mask)), dim=-1)


def export_encoder_int8(spec: str, out: Path, *, quantize: bool = True) -> Path:
    """A sentence encoder (mean pooled, a sentence-transformers folder's dense layers, L2-normalised: as `HFEncoder`)
    as an ONNX model at `out`, int8 unless `quantize=False`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    layered = bool(getattr(AutoConfig.from_pretrained(spec), "layer_types", None))
    encoder = AutoModel.from_pretrained(spec, attn_implementation="eager" if layered else None).eval()
    module = _Embedding(encoder, sentence_head(spec))
    return _export_quantized(module, AutoTokenizer.from_pretrained(spec), out, "embedding", quantize=quantize)
