"""A scratch labelgate home for the fault script and tests: a tiny random-init encoder (retrieval and both voters),
two voters with constant heads that agree on 售后/屏幕 (so a turn's route is known: auto by default, escalate with
`escalating`), the demo KB indexed into embedded Chroma. Built in seconds; nothing in the real home is touched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.taxonomy import Taxonomy

ACCEPTED = ("售后", "屏幕")  # what both constant voters accept (logit +4; every other label -4)
QUERY = "我的手机屏幕裂了，保修可以换吗？"
SMALL_DOCS = 40  # docs indexed from the demo KB (enough for filtered retrieval with widening)


def save_constant_voters(settings: Settings, encoder: Path, taxonomy: Taxonomy, *, version: str = "v1") -> None:
    """Voters A and B (frozen-head kind) whose logits are +4 for ACCEPTED and -4 else, whatever the query."""
    import torch

    from app.core.voters.base import Voter
    from app.core.voters.heads import MLPHead
    from app.core.voters.store import KIND_HEAD, head_writer, save_voter

    labels = taxonomy.ids
    for name in ("A", "B"):
        head = MLPHead(32, len(labels))
        with torch.no_grad():
            last: Any = head.net[4]
            last.weight.zero_()
            last.bias.copy_(torch.tensor([4.0 if x in ACCEPTED else -4.0 for x in labels]))
        meta = {"kind": KIND_HEAD, "encoder": str(encoder), "prefix": "", "hidden": 256}
        voter = Voter(name, version, labels, lambda texts: None, thresholds=dict.fromkeys(labels, 0.5), meta=meta)  # type: ignore[arg-type,return-value]
        save_voter(settings.voters_dir, voter, head_writer(head))


def scratch_settings(base: Settings, root: Path) -> Settings:
    """`base` pointed at a scratch home and model dir under `root`, with short timeouts and no LLM."""
    encoder = root / "models" / "tiny-encoder"
    return base.model_copy(
        update={
            "home": root / "home",
            "model_dir": root / "models",
            "encoder_a": str(encoder),
            "encoder_b": str(encoder),
            "embedder": str(encoder),
            "embedder_runtime": "torch",
            "voter_a_runtime": "torch",
            "llm_local": False,
            "llm_base_url": None,
            "llm_timeout": 1.0,
            "chroma_url": None,
            "chroma_timeout": 2.0,
            "database_url": None,
            "feedback_url": None,
            "decision_log_url": None,
            "top_k": 3,
            "fetch_k": 6,
        }
    )


def build_scratch_home(base: Settings, root: Path) -> Settings:
    """Build (or rebuild) the scratch home under `root`; returns its settings."""
    import json

    from app.core.data import DemoData
    from app.core.indexing import index_knowledge_base
    from app.testing import build_tiny_encoder

    shutil.rmtree(root, ignore_errors=True)
    settings = scratch_settings(base, root)
    taxonomy = Taxonomy.load(DemoData(settings.data_dir).taxonomy)
    encoder = build_tiny_encoder(Path(settings.encoder_a), seed=0)
    save_constant_voters(settings, encoder, taxonomy)
    docs = root / "docs.jsonl"
    lines = DemoData(settings.data_dir).docs.read_text(encoding="utf-8").splitlines()
    docs.write_text("\n".join(line for line in lines[:SMALL_DOCS] if json.loads(line)) + "\n", encoding="utf-8")
    index_knowledge_base(settings, docs_path=docs)
    return settings


def escalating(settings: Settings) -> Settings:
    """The same home with a vote policy no constant voter passes (margin < 1): every turn escalates to the LLM."""
    return settings.model_copy(update={"vote": settings.vote.model_copy(update={"min_margin": 1.0})})
