"""`labelgate data audit`: a planted mislabelled row is flagged, planted cross-split duplicates are found (the
conflicting one called out), a rare label is reported, bad input exits 2; the JSON keys are the documented ones."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.cli import app
from app.core.config import Settings
from app.core.errors import DataError, MissingExtraError
from app.ops.eval import audit_math as am
from app.ops.eval.audit import REPORT_KEYS, AuditVoter, run_audit
from app.testing import RandomCharEncoder
from tests.conftest import write_jsonl

pytest.importorskip("cleanlab")

TAXONOMY = """version: 1
labels:
  - id: 售后
  - id: 销售
  - {id: 屏幕, parent: 售后}
  - {id: 电池, parent: 售后}
  - {id: 活动, parent: 销售}
  - {id: 配送, parent: 销售}
  - {id: 冷门, parent: 销售}
"""
VOCAB = {"屏幕": "屏裂碎花亮触显闪", "电池": "电池充耗鼓续航量", "活动": "优惠券折扣满减赠", "配送": "快递发货物流签收"}
RARE = "冷门罕见稀少"


VOTERS = [
    AuditVoter("A", RandomCharEncoder("fake-a"), "weight"),
    AuditVoter("B", RandomCharEncoder("fake-b"), "weight_b"),
]


def _text(rng: random.Random, label: str) -> str:
    return "".join(rng.choice(VOCAB[label]) for _ in range(6))


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """Four learnable labels, two-label rows, one planted mislabel (train line 1), a cross-split duplicate, a
    conflicting one, and 冷门 with 3 train rows and none in test."""
    rng = random.Random(3)
    root = tmp_path / "data"
    root.mkdir()
    (root / "taxonomy.yaml").write_text(TAXONOMY, "utf-8")
    splits: dict[str, list[dict[str, object]]] = {}
    for split, n in (("train", 24), ("dev", 6), ("test", 6)):
        rows: list[dict[str, object]] = [{"text": _text(rng, x), "labels": [x]} for x in VOCAB for _ in range(n)]
        rows += [{"text": _text(rng, "屏幕") + _text(rng, "电池"), "labels": ["屏幕", "电池"]} for _ in range(n // 3)]
        rng.shuffle(rows)
        splits[split] = rows
    splits["train"].insert(0, {"text": "屏裂碎花亮触显闪屏裂", "labels": ["活动"]})  # planted: a screen text as 活动
    splits["train"] += [{"text": RARE[i : i + 3] + "冷", "labels": ["冷门"]} for i in range(3)]
    splits["dev"].append({"text": RARE[:4], "labels": ["冷门"]})
    splits["train"].append({"text": "快递发货了吗？", "labels": ["配送"]})
    splits["test"].append({"text": "快递 发货了吗", "labels": ["配送"]})  # same normalised text, same labels
    splits["train"].append({"text": "优惠券能用吗", "labels": ["活动"]})
    splits["dev"].append({"text": "优惠券能用吗！", "labels": ["配送"]})  # same text, conflicting labels
    for split, rows in splits.items():
        write_jsonl(root / "queries" / f"{split}.jsonl", rows)
    return root


@pytest.fixture()
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"train": settings.train.model_copy(update={"epochs_b": 40})})


def test_audit_finds_the_planted_problems(data_dir: Path, fast: Settings) -> None:
    result = run_audit(fast, data_dir, folds=4, min_train=5, voters=VOTERS)
    assert set(result) == set(REPORT_KEYS)
    assert result["multi_label"] and result["format"] == "labelgate" and result["folds"] == 4
    flagged = {(x["split"], x["line"]): x for x in result["label_issues"]}
    planted = flagged[("train", 1)]
    assert planted["labels"] == ["活动"] and "屏幕" in planted["suggested"], planted
    assert len(flagged) <= 8, flagged  # a clean, learnable set: few others
    groups = result["duplicates"]["exact"]
    found = {tuple((r["split"], r["text"]) for r in g["rows"]): g for g in groups}
    same = found[(("train", "快递发货了吗？"), ("test", "快递 发货了吗"))]
    clash = found[(("train", "优惠券能用吗"), ("dev", "优惠券能用吗！"))]
    assert same["cross_split"] and not same["conflicting"] and clash["cross_split"] and clash["conflicting"]
    rare = result["rare_labels"]
    assert rare["rare"] == ["冷门"] and rare["absent"] == {"冷门": ["test"]}
    assert rare["counts"]["冷门"] == {"train": 3, "dev": 1, "test": 0}
    assert result["summary"]["exact_conflicting"] == 1 and result["summary"]["rare_labels"] == 1


def test_single_label_public_dataset(tmp_path: Path, fast: Settings) -> None:
    rng = random.Random(5)
    src = tmp_path / "public"
    planted = {"text": "优惠券折扣满减赠优惠", "label": "电池"}
    for split, n in (("train", 20), ("test", 5)):
        rows = [{"text": _text(rng, x), "label": x} for x in VOCAB for _ in range(n)]
        write_jsonl(src / f"{split}.jsonl", [planted, *rows] if split == "train" else rows)
    result = run_audit(fast, src, folds=3, voters=VOTERS)
    assert result["format"] == "public" and not result["multi_label"]
    found = [x for x in result["label_issues"] if x["text"] == planted["text"]]
    assert found and found[0]["labels"] == ["电池"] and found[0]["suggested"] == ["活动"], result["label_issues"][:3]


def test_bad_input(tmp_path: Path, fast: Settings, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="not a directory"):
        run_audit(fast, tmp_path / "missing", voters=VOTERS)
    with pytest.raises(DataError, match="folds must be at least 2"):
        run_audit(fast, data_dir, folds=1, voters=VOTERS)
    (data_dir / "queries" / "dev.jsonl").write_text('{"text": "x", "labels": ["无此标签"]}\n', "utf-8")
    with pytest.raises(DataError, match=r"dev.jsonl:1: unknown labels"):
        run_audit(fast, data_dir, voters=VOTERS)
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'labelgate\[audit\]'"):
        run_audit(fast, data_dir, voters=VOTERS)


def test_cli(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABELGATE_TRAIN__EPOCHS_B", "30")
    monkeypatch.setattr("app.ops.eval.audit.default_voters", lambda settings: VOTERS)
    out, report = tmp_path / "audit.json", tmp_path / "audit.html"
    args = ["data", "audit", "--data", str(data_dir), "--out", str(out), "--report", str(report), "--folds", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text("utf-8"))
    assert set(saved) == set(REPORT_KEYS)
    page = report.read_text("utf-8")
    assert "<table>" in page and "优惠券能用吗" in page and "conflicting labels" in page and "<script" not in page
    bad = CliRunner().invoke(app, ["data", "audit", "--data", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "error:" in bad.output and "not a directory" in bad.output
    bad = CliRunner().invoke(app, ["data", "audit", "--data", str(data_dir), "--folds", "1"])
    assert bad.exit_code == 2


@given(st.lists(st.sampled_from(["a", "b", "c", "a+b"]), min_size=4, max_size=60), st.integers(2, 6))
def test_folds_are_stratified(keys: list[str], k: int) -> None:
    folds = am.stratified_folds(keys, k, seed=1)
    sizes = np.bincount(folds, minlength=k)
    assert folds.min() >= 0 and folds.max() < k and sizes.max() - sizes.min() <= 1
    for key in set(keys):
        per = np.bincount(folds[[i for i, x in enumerate(keys) if x == key]], minlength=k)
        assert per.max() - per.min() <= 1  # every key spread evenly
    assert (am.stratified_folds(keys, k, seed=1) == folds).all()


@hypothesis_settings(max_examples=60)
@given(st.text(min_size=1, max_size=12))
def test_normalise_ignores_spacing_and_punctuation(text: str) -> None:
    assert am.normalise(text) == am.normalise(f" {text}，！ ")
    assert am.normalise("屏幕 裂了，能修吗？") == am.normalise("屏幕裂了能修吗") != am.normalise("屏幕裂了能修")


def test_near_duplicates_only_across_splits() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    pairs = am.near_duplicates(["train", "train", "dev", "test"], vectors, 0.9)
    assert [(i, j) for i, j, _ in pairs] == [(0, 3), (1, 3)]
    assert am.near_duplicates(["train", "train", "dev", "test"], vectors, 0.9, skip={frozenset((0, 3))})[0][:2] == (
        1,
        3,
    )
