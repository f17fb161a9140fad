"""Public datasets as labelgate data dirs: taxonomy from labels and domains, dev carved from train, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.data import load_examples
from app.core.errors import DataError
from app.core.taxonomy import Taxonomy
from app.ops.eval.datasets import prepare


def write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_domains_become_coarse_labels_and_dev_is_a_stratified_slice(tmp_path: Path) -> None:
    rows = [
        {"text": f"{lab} {i}", "label": lab, "domain": dom}
        for lab, dom in (("a", "X"), ("b", "X"), ("c", "Y"))
        for i in range(14)
    ]
    rows += [{"text": f"nothing {i}", "label": "oos", "domain": "oos"} for i in range(7)]
    write(tmp_path / "src" / "train.jsonl", rows)
    write(tmp_path / "src" / "test.jsonl", rows[:5])
    out = prepare(tmp_path / "src", tmp_path / "out", oos_label="oos")
    taxonomy = Taxonomy.load(out / "taxonomy.yaml")
    assert set(taxonomy.coarse_ids) == {"X", "Y", "oos"} and taxonomy.coarse_of("c") == "Y"
    assert taxonomy.oos_label == "oos"
    train = load_examples(out / "queries" / "train.jsonl", taxonomy)
    dev = load_examples(out / "queries" / "dev.jsonl", taxonomy)
    assert len(train) + len(dev) == len(rows) and {ex.labels[-1] for ex in dev} >= {"a", "b", "c"}
    assert not {ex.text for ex in train} & {ex.text for ex in dev}
    capped = prepare(tmp_path / "src", tmp_path / "capped", max_train=12)
    assert 10 <= len(load_examples(capped / "queries" / "train.jsonl", taxonomy)) <= 14


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train.jsonl": [{"text": " ", "label": "a"}], "test.jsonl": [{"text": "x", "label": "a"}]}, "train.jsonl:1"),
        ({"train.jsonl": [{"text": "x"}], "test.jsonl": [{"text": "x", "label": "a"}]}, "needs 'label'"),
        ({"train.jsonl": [{"text": "x", "label": "a"}]}, "missing test.jsonl"),
        ({"train.jsonl": [{"text": "x", "label": "a"}], "test.jsonl": [], "extra.jsonl": []}, "unknown split files"),
    ],
)
def test_bad_datasets_name_file_and_line(
    tmp_path: Path, files: dict[str, list[dict[str, object]]], message: str
) -> None:
    for name, rows in files.items():
        write(tmp_path / "src" / name, rows)
    with pytest.raises(DataError, match=message):
        prepare(tmp_path / "src", tmp_path / "out")


def test_plain_classification_on_a_flat_taxonomy_picks_the_likeliest_label(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from app.core.taxonomy import Label
    from app.ops.training.evaluate import classifier_labels

    flat = Taxonomy(labels=(Label("weather"), Label("music"), Label("chat")))
    assert classifier_labels({"weather": 0.2, "music": 0.4, "chat": 0.1}, flat) == ["music"]
    assert classifier_labels({"屏幕": 0.3, "其他": 0.45, "售后": 0.49}, taxonomy) == ["其他"]  # leaves only
