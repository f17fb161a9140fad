"""A tiny trained home for the soak tests: tiny data, tiny random-init encoders, voters trained and KB indexed once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.core.config import Settings, TrainSettings
from tests.conftest import ROOT, ROWS, SEED_DOCS, write_jsonl


def tiny_data(root: Path) -> Path:
    """The demo taxonomy and rules with a handful of queries per split and the seed docs."""
    data = root / "data"
    data.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "taxonomy.yaml", data / "taxonomy.yaml")
    shutil.copy(ROOT / "data" / "rules.yaml", data / "rules.yaml")
    for split, suffix in (("train", ""), ("dev", "呀"), ("test", "啊")):
        write_jsonl(
            data / "queries" / f"{split}.jsonl",
            [{"text": t + suffix, "labels": [label]} for label, texts in ROWS.items() for t in texts],
        )
    write_jsonl(data / "kb" / "docs.jsonl", [{"id": i, "text": t, "labels": labels} for i, t, labels in SEED_DOCS])
    return data


@pytest.fixture(scope="session")
def soak_source(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Settings:
    """Settings of a home with tiny voters trained and the seed KB indexed (the soak scripts copy what they use)."""
    from app.core.indexing import index_knowledge_base
    from app.ops.training.train import train_voters

    root = tmp_path_factory.mktemp("soak-source")
    settings = Settings(
        data_dir=tiny_data(root),
        home=root / "home",
        model_dir=root / "models",
        encoder_a=str(tiny_encoder_dir),
        encoder_b=str(tiny_encoder_dir),
        embedder=str(tiny_encoder_dir),
        collection="soak-test",
        llm_local=False,
        train=TrainSettings(epochs_a=1, epochs_full=1, epochs_b=5),
    )
    train_voters(settings)
    index_knowledge_base(settings)
    return settings
