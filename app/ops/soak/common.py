"""What the soak scripts share: a scratch home under the script's workdir and the models it serves.

The scratch home holds its own checkpoints, feedback store and decision log (SQLite, never the configured Postgres
or the real home's files). Its voters are the configured home's trained ones (linked, read-only) with a copy of its
Chroma KB; a home without trained voters gets tiny random-init encoders, voters trained on them here and a fresh KB,
so `labelgate soak` runs anywhere. `models` in the figures says which. No LLM is configured (see each script).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import Settings, TrainSettings
from app.core.data import DemoData


@dataclass(frozen=True)
class SoakHome:
    settings: Settings
    models: dict[str, str]  # {"voters": "trained" | "tiny", "encoder_a": ..., "versions": ...}


def _versions(voters_dir: Path) -> str:
    return ",".join(f"{name}:{(voters_dir / name / 'CURRENT').read_text().strip()}" for name in ("A", "B"))


def scratch_home(settings: Settings, workdir: Path) -> SoakHome:
    """A fresh home under `workdir` (a previous run's is removed) serving the settings' models without an LLM."""
    home = workdir / "home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    update: dict[str, Any] = {
        "home": home,
        "feedback_url": None,
        "database_url": None,
        "decision_log_url": None,
        "llm_base_url": None,
        "llm_local": False,
        "review_token": None,
    }
    if (settings.voters_dir / "A" / "CURRENT").is_file() and (settings.voters_dir / "B" / "CURRENT").is_file():
        (home / "voters").symlink_to(settings.voters_dir.resolve(), target_is_directory=True)
        if settings.chroma_url is None:
            if not settings.chroma_dir.is_dir():
                from app.core.errors import ModelNotBuiltError

                raise ModelNotBuiltError(f"no knowledge base in {settings.chroma_dir}: run `labelgate index`")
            shutil.copytree(settings.chroma_dir, home / "chroma")
        scratch = settings.model_copy(update=update)
        return SoakHome(
            scratch, {"voters": "trained", "encoder_a": scratch.encoder_a_id, "versions": _versions(home / "voters")}
        )
    return _tiny_home(settings.model_copy(update=update), workdir)


def _tiny_home(settings: Settings, workdir: Path) -> SoakHome:
    from app.core.indexing import index_knowledge_base
    from app.ops.training.train import train_voters
    from app.testing import build_tiny_encoder

    encoder = build_tiny_encoder(workdir / "tiny-encoder", seed=0)
    tiny = settings.model_copy(
        update={
            "encoder_a": str(encoder),
            "encoder_b": str(encoder),
            "embedder": str(encoder),
            "chroma_url": None,
            "collection": "soak-kb",
            "train": TrainSettings(epochs_a=1, epochs_full=1, epochs_b=5, doc_rows=200),
        }
    )
    train_voters(tiny)
    index_knowledge_base(tiny)
    return SoakHome(tiny, {"voters": "tiny", "encoder_a": str(encoder), "versions": _versions(tiny.voters_dir)})


def soak_queries(settings: Settings, limit: int) -> list[str]:
    """Distinct real queries of the demo data (dev then test split), at most `limit`."""
    data = DemoData(settings.data_dir)
    texts: dict[str, None] = {}
    for split in ("dev", "test", "train"):
        path = data.split(split)
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    texts.setdefault(str(json.loads(line).get("text", "")).strip(), None)
    queries = [t for t in texts if t][:limit]
    if not queries:
        from app.core.errors import DataError

        raise DataError(f"no queries in {data.root / 'queries'}: the soak needs the demo's query files")
    return queries


def dump_settings(settings: Settings, path: Path) -> Path:
    """The settings as JSON for a child process (no secrets: the scratch home has none)."""
    path.write_text(settings.model_dump_json(), encoding="utf-8")
    return path


def load_dumped(path: Path) -> Settings:
    return Settings.model_validate(json.loads(path.read_text(encoding="utf-8")))


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of latencies in seconds (nearest rank)."""
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 2)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99)}
