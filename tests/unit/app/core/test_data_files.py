"""Data files: the demo data loads; every malformed file fails with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.data import DemoData, load_docs, load_examples, load_samples
from app.core.errors import DataError
from app.core.rules import RuleSet
from app.core.taxonomy import Taxonomy
from tests.conftest import ROOT, SEED_DOCS

DEMO = DemoData(ROOT / "data")


def test_demo_data_is_valid_and_big_enough(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.coarse_ids == ["售后", "销售", "投诉", "其他"] and len(taxonomy.fine_ids) >= 12
    assert taxonomy.oos_label == "其他"
    sizes = {name: len(load_examples(DEMO.split(name), taxonomy)) for name in ("train", "dev", "test")}
    assert sizes["train"] >= 800 and sizes["test"] >= 200
    docs = {doc.id: doc for doc in load_docs(DEMO.docs, taxonomy)}
    assert len(docs) >= 80
    for doc_id, text, labels in SEED_DOCS[:6]:
        assert docs[doc_id].text == text and set(taxonomy.expand(labels)) == set(docs[doc_id].labels)
    assert len(load_samples(DEMO.samples)) >= 6
    rules = RuleSet.load(DEMO.rules, taxonomy)
    assert {h.rule_id for h in rules.hits("我的手机屏幕裂了，保修可以换吗？")} == {"screen-damage", "warranty-policy"}
    assert [h.rule_id for h in rules.hits("买碎屏险多少钱")] == ["extended-warranty"]


def test_taxonomy_helpers(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.expand(["屏幕", "nope"]) == ["售后", "屏幕"]
    assert taxonomy.fine_only(["售后", "屏幕", "投诉"]) == ["投诉", "屏幕"]
    assert taxonomy.review_mode(["服务态度"]) == "before_answer"
    assert taxonomy.review_mode(["屏幕"]) == "after_answer"
    assert taxonomy.split_known(["屏幕", "X", "屏幕"]) == (["屏幕"], ["X"])


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("labels:\n  - id: A\n  - id: A\n", "duplicate label id"),
        ("labels:\n  - id: A\n    parent: Z\n", "unknown parent"),
        ("labels:\n  - id: A\n    weight: -1\n", ":2: weight of 'A'"),
        ("labels:\n  - id: A\n  - id: B\n    review: later\n", ":3: review of 'B'"),
        ("labels:\n  - id: A\n    colour: red\n", ":2: unknown keys"),
        ("labels: [\n", "invalid YAML"),
        ("oos_label: Q\nlabels:\n  - id: A\n", "oos_label"),
    ],
)
def test_bad_taxonomy(tmp_path: Path, body: str, needle: str) -> None:
    path = write(tmp_path, "taxonomy.yaml", body)
    with pytest.raises(DataError) as err:
        Taxonomy.load(path)
    assert str(path) in str(err.value) and needle in str(err.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"text": "ok", "labels": ["屏幕"]}\n{"text": "x", "labels": [', ":2: invalid JSON"),
        ('\n["a"]\n', ":2: expected a JSON object"),
        ('{"text": "  ", "labels": ["屏幕"]}\n', ":1: field 'text' is empty"),
        ('{"text": 3, "labels": ["屏幕"]}\n', ":1: field 'text' must be a string"),
        ('{"text": "a", "labels": ["ADMIN"]}\n', ":1: unknown labels ['ADMIN']"),
        ('{"text": "a"}\n', ":1: missing 'labels'"),
        ('{"text": "a", "labels": []}\n', ":1: 'labels' is empty"),
        (b'{"text": "\xff\xfe"}\n', ":1: not UTF-8"),
        ("", "no examples"),
    ],
)
def test_bad_examples(tmp_path: Path, taxonomy, body: str | bytes, needle: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "train.jsonl", body)
    with pytest.raises(DataError) as err:
        load_examples(path, taxonomy)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_single_label_rows_and_bad_docs(tmp_path: Path, taxonomy) -> None:  # type: ignore[no-untyped-def]
    ok = write(tmp_path, "ok.jsonl", '{"text": "屏幕碎了", "label": "屏幕"}\n')
    assert load_examples(ok, taxonomy)[0].labels == ("售后", "屏幕")
    dup = write(tmp_path, "docs.jsonl", '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(DataError, match=r"docs.jsonl:2: duplicate doc id 'a' \(first on line 1\)"):
        load_docs(dup, taxonomy)
    with pytest.raises(DataError, match="file not found"):
        load_docs(tmp_path / "missing.jsonl", taxonomy)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("rules:\n  - id: r\n    labels: [屏幕]\n    regex: '('\n", ":2: rule 'r': invalid regex"),
        ("rules:\n  - id: r\n    labels: [ADMIN]\n    keywords: [x]\n", ":2: rule 'r' names unknown labels"),
        ("rules:\n  - id: r\n    labels: [屏幕]\n", ":2: rule 'r' needs 'keywords' or 'regex'"),
        ("rules:\n  - id: r\n    keywords: [x]\n", ":2: rule 'r' needs a non-empty 'labels'"),
        (
            "rules:\n  - {id: r, labels: [屏幕], keywords: [x]}\n  - {id: r, labels: [屏幕], keywords: [y]}\n",
            ":3: duplicate rule id",
        ),
    ],
)
def test_bad_rules(tmp_path: Path, taxonomy, body: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "rules.yaml", body)
    with pytest.raises(DataError) as err:
        RuleSet.load(path, taxonomy)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_rules_match_case_insensitively(tmp_path: Path, taxonomy) -> None:  # type: ignore[no-untyped-def]
    path = write(
        tmp_path,
        "rules.yaml",
        "rules:\n  - {id: wifi, labels: [系统故障], regex: 'wifi.{0,2}连不上'}\n"
        "  - {id: promo, labels: [活动优惠], keywords: [SALE]}\n",
    )
    rules = RuleSet.load(path, taxonomy)
    assert [h.to_dict() for h in rules.hits("WiFi连不上, big sale")] == [
        {"rule": "wifi", "labels": ["售后", "系统故障"], "matched": "WiFi连不上"},
        {"rule": "promo", "labels": ["销售", "活动优惠"], "matched": "SALE"},
    ]
