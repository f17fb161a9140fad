"""ONNX Runtime int8 models, the serving side (no torch). Voter A: the merged LoRA encoder + head exported once per
version, quantised (MatMul weights per channel, the token embedding table) and calibrated on dev in its own right;
torch stays the fallback (older versions, missing file). The retrieval encoder: the same export of the plain checkpoint
(`OnnxEncoder`). `app.core.voters.export` makes the files.

Measured on 2 CPU cores (one query): voter A on torch 13.3 ms, ONNX fp32 5.3 ms (same logits), ONNX int8 2.9–3.6 ms;
int8 after its own calibration on the demo test split: voter A macro-F1 0.828 → 0.822, auto precision 0.838 → 0.830.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RUNTIMES = ("torch", "onnx-int8")
INT8_FILE = "model.int8.onnx"


def session(path: Path) -> Any:
    """An ONNX Runtime session that runs each call on one thread, without spinning workers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per call: for one short query, thread hand-offs cost more than they save (bench gate, 2 cores:
    # voter A p50 3.4 ms on 1 thread vs 4.7 ms on 2); concurrent callers run their calls on the other core.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle workers must not spin: voter B (numpy BLAS) runs right after on the same cores (gate p95 24 ms with spinning)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@functools.cache
def encoder_session(path: Path) -> Any:
    """One session per encoder export and process: retrieval and a fast-mode voter A share the e5 export, so its
    weights are in memory once. (Voter exports are per version and not kept here.)"""
    return session(path)


@functools.cache
def fast_tokenizer(spec: str) -> Any:
    """The checkpoint's `tokenizers.Tokenizer`, one per process: e5's 250k-token vocabulary costs ~280 MB as a bare
    Rust tokenizer and ~550 MB wrapped by transformers, so voter A and the retrieval embedder share this one."""
    import tokenizers

    file = Path(spec).expanduser() / "tokenizer.json"
    if file.is_file():
        return tokenizers.Tokenizer.from_file(str(file))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec).backend_tokenizer  # a hub id: its fast tokenizer's backend


def token_ids(tokenizer: Any, text: str, max_length: int) -> np.ndarray:
    """Ids with special tokens, cut to max_length keeping the closing special token (as transformers truncates)."""
    ids = tokenizer.encode(text).ids
    if len(ids) > max_length:
        ids = ids[: max_length - 1] + ids[-1:]
    return np.asarray([ids], dtype=np.int64)


def run_one(sess: Any, tokenizer: Any, text: str, max_length: int) -> np.ndarray:
    """One text through the session. One text a call: dynamic int8 quantises activations with ranges taken over the
    whole batch, so a text's output would depend on its batch-mates and their padding."""
    ids = token_ids(tokenizer, text, max_length)
    return np.asarray(sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])


class OnnxEncoder:
    """The int8 export of a sentence encoder: one text a call, `threads` texts at once for a list (indexing)."""

    def __init__(self, spec: str, path: Path, *, threads: int = 2, max_length: int = 256, prefix: str = "") -> None:
        self.spec, self.path, self.threads, self.max_length = spec, path, max(1, threads), max_length
        self.prefix = prefix  # prepended to every text (a voter's "query: "; retrieval adds its own prefixes)
        self.tokenizer = fast_tokenizer(spec)
        self.session = encoder_session(path)
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self._pool: ThreadPoolExecutor | None = None

    def _one(self, text: str) -> np.ndarray:
        return run_one(self.session, self.tokenizer, self.prefix + text, self.max_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) <= 1 or self.threads == 1:
            rows = [self._one(text) for text in texts]
        else:
            self._pool = self._pool or ThreadPoolExecutor(self.threads, thread_name_prefix="labelgate-embed")
            rows = list(self._pool.map(self._one, texts))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def ort_logits_fn(path: Path, spec: str, *, prefix: str, max_length: int) -> Callable[[Sequence[str]], np.ndarray]:
    """Logits from the int8 ONNX model, one text a call (calibration sees what serving sees)."""
    sess, tokenizer = session(path), fast_tokenizer(spec)
    width = sess.get_outputs()[0].shape[-1]

    def logits(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), width), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = run_one(sess, tokenizer, prefix + text, max_length)
        return out

    return logits
