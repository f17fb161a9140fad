"""A label added to taxonomy.yaml plus a handful of reviewed examples becomes predictable after `retrain`.

Tiny random-init encoders train both voters for real (LoRA + head for A, MLP head for B) on a small copy of the demo
data, so this checks the whole path — taxonomy → feedback → merge → train → calibrate → gate → promote → load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.core.config import Settings, TrainSettings
from app.core.feedback import FeedbackStore
from app.core.taxonomy import Taxonomy
from app.core.voters.store import load_voter
from app.ops.training.retrain import retrain
from app.testing import build_tiny_encoder

ROOT = Path(__file__).resolve().parents[4]
NEW = "数据迁移"
TAUGHT = [
    "手机数据怎么迁移",
    "聊天记录怎么迁移到新手机",
    "照片迁移到新手机",
    "通讯录迁移",
    "数据迁移收费吗",
    "门店能迁移数据吗",
]
OTHERS = ["屏幕碎了能保修吗", "电池不耐用", "双十一有什么优惠", "快递什么时候到"]


def _small_data(tmp: Path, per_split: dict[str, int]) -> Path:
    data = tmp / "data"
    (data / "queries").mkdir(parents=True)
    for name in ("rules.yaml",):
        shutil.copy(ROOT / "data" / name, data / name)
    doc = yaml.safe_load((ROOT / "data" / "taxonomy.yaml").read_text(encoding="utf-8"))
    doc["labels"].append({"id": NEW, "parent": "售后", "description": "换机时的数据迁移"})
    (data / "taxonomy.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    for split, n in per_split.items():
        lines = (ROOT / "data" / "queries" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        (data / "queries" / f"{split}.jsonl").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return data


def test_a_new_label_is_learned_from_reviewed_examples(tmp_path: Path) -> None:
    data = _small_data(tmp_path, {"train": 120, "dev": 40, "test": 40})
    texts = [json.loads(line)["text"] for f in (data / "queries").glob("*.jsonl") for line in f.open(encoding="utf-8")]
    encoder = build_tiny_encoder(tmp_path / "enc", texts=[*texts, *TAUGHT, *OTHERS], seed=1)
    settings = Settings(
        data_dir=data,
        home=tmp_path / "home",
        model_dir=tmp_path / "models",
        encoder_a=str(encoder),
        encoder_b=str(encoder),
        query_prefix="",
        llm_local=False,
        # tiny random-init encoders learn 4–5 of the 6 reviewed rows exactly (both voters' accepted sets)
        train=TrainSettings(
            mode="lora", epochs_a=30, epochs_b=200, lr_lora=1e-2, lr_head=3e-2, min_feedback_learned=0.5
        ),
    )
    store = FeedbackStore(settings.feedback_db_url)
    for i, text in enumerate(TAUGHT):
        store.add(thread_id=f"t{i}", query=text, labels=[NEW], source="human", reviewer="alice")

    outcome = retrain(settings)

    fine = Taxonomy.load(data / "taxonomy.yaml").fine_ids
    assert outcome["feedback_rows"] == len(TAUGHT) and outcome["promoted"]  # no current version: promoted
    assert (
        outcome["comparison"][0].startswith("feedback_learned")
        and outcome["candidate"]["test"]["feedback_learned"] >= 0.5
    )
    # a new label's reviews repeat until it has feedback_min_label_rows rows (40 / 6 reviews → 7 times each)
    assert outcome["candidate"]["train_rows"] == 120 + 7 * len(TAUGHT)
    exported = settings.voters_dir / "A" / outcome["now_current"] / "model.int8.onnx"
    assert exported.is_file()  # voter A is exported to int8 ONNX and calibrated for it at train time
    for name, runtime in (("A", "torch"), ("A", "onnx-int8"), ("B", "torch")):
        voter = load_voter(settings.voters_dir, name, runtime=runtime)
        assert NEW in voter.labels and voter.version == outcome["now_current"]
        taught = np.mean([o.probs[NEW] for o in voter.outputs(TAUGHT)])
        other = np.mean([o.probs[NEW] for o in voter.outputs(OTHERS)])
        assert taught > other + 0.2, (name, taught, other)
        top = [max(fine, key=o.probs.__getitem__) for o in voter.outputs(TAUGHT)]
        assert top.count(NEW) >= len(TAUGHT) - 1, (name, top)  # the most likely fine label of (nearly) all of them


def test_loop_plan_is_validated(tmp_path: Path) -> None:
    from app.core.errors import DataError
    from app.ops.loop import LoopPlan

    plan = LoopPlan.load(ROOT / "data" / "loop.yaml")
    assert plan.families and all(f.reviewed and f.probes for f in plan.families)
    known = {json.loads(line)["text"] for f in (ROOT / "data" / "queries").glob("*.jsonl") for line in f.open()}
    for family in plan.families:  # probes must be held out from every split and from the reviewed queries
        assert not {c.text for c in family.probes} & (known | {c.text for c in family.reviewed})
    bad = tmp_path / "loop.yaml"
    bad.write_text("families:\n  - name: x\n    reviewed: [{text: 只有文本}]\n    probes: []\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"loop.yaml:\d+"):
        LoopPlan.load(bad)


def test_loop_workspace_is_a_copy_with_the_new_labels(settings) -> None:  # type: ignore[no-untyped-def]
    from app.ops.loop import LoopPlan, prepare_workspace

    for name in ("A", "B"):
        for version in ("v0", "v1"):
            (settings.voters_dir / name / version).mkdir(parents=True)
        (settings.voters_dir / name / "CURRENT").write_text("v1")
    original = (ROOT / "data" / "taxonomy.yaml").read_text(encoding="utf-8")
    scratch = prepare_workspace(settings, LoopPlan.load(ROOT / "data" / "loop.yaml"))
    assert scratch.home == settings.home / "loop" / "home" and scratch.data_dir == settings.home / "loop" / "data"
    assert NEW in Taxonomy.load(scratch.data_dir / "taxonomy.yaml").ids
    assert NEW not in Taxonomy.load(ROOT / "data" / "taxonomy.yaml").ids
    assert (ROOT / "data" / "taxonomy.yaml").read_text(encoding="utf-8") == original
    assert (scratch.voters_dir / "A" / "CURRENT").read_text().strip() == "v1"
    assert not (scratch.voters_dir / "A" / "v0").exists()  # only the current version is copied
    assert scratch.feedback_db_url.startswith(f"sqlite:///{scratch.home}") and not scratch.llm_local


def test_onnx_int8_voter_a_follows_torch(tiny_encoder_dir, taxonomy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The exported int8 model gives nearly the torch logits; a version without it falls back to torch."""
    from transformers import AutoModel, AutoTokenizer

    from app.core.voters.export import export_int8
    from app.core.voters.heads import PooledClassifier, pooled_logits
    from app.core.voters.onnx import ort_logits_fn

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder_dir))
    model = PooledClassifier(AutoModel.from_pretrained(str(tiny_encoder_dir)), 32, len(taxonomy.ids)).eval()
    path = export_int8(model, tokenizer, tmp_path / "m.onnx")
    texts = [*TAUGHT, *OTHERS, "我的手机屏幕裂了，保修可以换吗？" * 5]
    ref = pooled_logits(tokenizer, model, texts, prefix="", max_length=64)
    got = ort_logits_fn(path, str(tiny_encoder_dir), prefix="", max_length=64)(texts)
    assert got.shape == ref.shape and np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.99


def test_loop_counts_reviewed_queries_both_voters_now_label_as_reviewed() -> None:
    from app.core.voters.base import Voter
    from app.ops.loop import _learned

    taxonomy = Taxonomy.load(ROOT / "data" / "taxonomy.yaml")
    labels = taxonomy.ids
    leaf = next(label for label in labels if taxonomy[label].parent)
    parent = taxonomy[leaf].parent

    def voter(name: str, knows: set[str]) -> Voter:
        def logits(texts):  # type: ignore[no-untyped-def]
            hot = [label in (leaf, parent) for label in labels]
            return np.array([[8.0 if hot[j] and t in knows else -8.0 for j in range(len(labels))] for t in texts])

        return Voter(name, "v", labels, logits, thresholds=dict.fromkeys(labels, 0.5))

    reviewed = [
        {"query": "q1", "reviewed": [leaf]},
        {"query": "q2", "reviewed": [leaf]},
        {"query": "auto", "reviewed": None},  # decided automatically: not a reviewed case
    ]
    assert _learned([voter("A", {"q1", "q2"}), voter("B", {"q1"})], reviewed, taxonomy) == 0.5
    assert _learned([voter("A", set()), voter("B", set())], reviewed, taxonomy) == 0.0
    assert _learned([voter("A", set())], [{"query": "x", "reviewed": None}], taxonomy) is None


def test_lora_on_an_encoder_without_query_value_layers_is_a_clear_error(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    from app.core.errors import ConfigError
    from app.ops.training.loops import build_voter_a_model

    folder = build_tiny_encoder(tmp_path / "enc")
    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50)).save_pretrained(str(folder))
    (folder / "config.json").write_text(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50).to_json_string())
    with pytest.raises(ConfigError, match="LABELGATE_TRAIN__MODE=fast"):
        build_voter_a_model(str(folder), 3, TrainSettings(mode="lora"))
