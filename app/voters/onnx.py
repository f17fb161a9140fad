"""Voter A on ONNX Runtime: the merged LoRA encoder + head exported once per version, its MatMul weights quantised to
int8 per channel, and calibrated on dev in its own right. torch stays the fallback (older versions, missing file).

Measured on 2 CPU cores (one query): torch 13.3 ms, ONNX fp32 5.3 ms (same logits), ONNX int8 2.9 ms; int8 after its
own calibration: voter A macro-F1 0.828 → 0.815, gate auto precision 0.838 → 0.845 on the demo test split.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.voters.heads import PooledClassifier

RUNTIMES = ("torch", "onnx-int8")
INT8_FILE = "model.int8.onnx"


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


def export_int8(model: PooledClassifier, tokenizer: Any, out: Path) -> Path:
    """Export `model` (a PeftModel encoder is merged on a copy; the original is untouched) and quantise it to `out`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    merged: Any = copy.deepcopy(model.encoder)
    if hasattr(merged, "merge_and_unload"):  # a PeftModel while training
        merged = merged.merge_and_unload()
    plain = PooledClassifier(merged, model.head.in_features, model.head.out_features)
    plain.head.load_state_dict(model.head.state_dict())
    plain.eval()
    sample = tokenizer(["query: 样例"], return_tensors="pt")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_root(_PREPROCESS_HINT):
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent branches: shapes are dynamic axes here
        fp32 = Path(tmp) / "model.onnx"
        torch.onnx.export(
            _Logits(plain),
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(
            str(fp32), str(out), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
        )
    return out


def ort_logits_fn(path: Path, tokenizer: Any, *, prefix: str, max_length: int) -> Callable[[Sequence[str]], np.ndarray]:
    """Logits from the int8 ONNX model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per call: for one short query, thread hand-offs cost more than they save (bench gate, 2 cores:
    # voter A p50 3.4 ms on 1 thread vs 4.7 ms on 2); concurrent callers run their calls on the other core.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle workers must not spin: voter B (numpy BLAS) runs right after on the same cores (gate p95 24 ms with spinning)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    width = session.get_outputs()[0].shape[-1]

    def logits(texts: Sequence[str]) -> np.ndarray:
        # One text a call: dynamic int8 quantises activations with ranges taken over the whole batch, so a query's
        # logits would depend on its batch-mates and their padding — and calibration must see what serving sees.
        out = np.zeros((len(texts), width), dtype=np.float32)
        for i, text in enumerate(texts):
            batch = tokenizer([prefix + text], truncation=True, max_length=max_length, return_tensors="np")
            feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            out[i] = session.run(["logits"], feeds)[0][0]
        return out

    return logits
