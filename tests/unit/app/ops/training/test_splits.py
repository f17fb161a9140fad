"""What `labelgate train` learns from: the data dir's query splits, or — the cold start of a new KB with labelled docs
and no labelled query — splits cut from those docs, measured on question-sized passages of docs never learnt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.config import load_settings
from app.core.data import DemoData, Doc
from app.core.errors import DataError
from app.core.taxonomy import Taxonomy
from app.core.voters.store import load_pair
from app.ops.training.splits import MIN_COLD_DOCS, load_splits, query_like, split_docs
from tests.conftest import ROOT, write_jsonl
from tests.unit.app.cli.test_cli import env, run

__all__ = ["env"]  # the CLI's tiny data dir and LABELGATE_* settings (a fixture)

TOPICS = {"屏幕": "屏幕碎了显示花屏触控失灵", "电池": "电池续航差充电慢发烫耗电", "以旧换新": "旧机估价回收抵扣换新"}


def long_docs(per_label: int = 8) -> list[dict[str, object]]:
    """Docs of four sentences about one topic each: longer than a question, so they yield passages."""
    rows = []
    for label, words in TOPICS.items():
        for i in range(per_label):
            sentences = [words[(i + s) % len(words) :] + words[: (i + s) % len(words)] + f"第{s}条。" for s in range(4)]
            rows.append({"id": f"{label}-{i}", "title": label, "text": "".join(sentences), "labels": [label]})
    return rows


@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=60), st.integers(0, 5))
def test_every_doc_lands_in_exactly_one_part(labels: list[str], seed: int) -> None:
    docs = [Doc(str(i), f"text {i}", (label,)) for i, label in enumerate(labels)]
    train, dev, test = split_docs(docs, 0.15, seed)
    assert sorted(d.id for d in train + dev + test) == sorted(d.id for d in docs)
    for label in set(labels):  # a label with 3 docs or more keeps at least one for dev and one for test
        count = labels.count(label)
        kept = [sum(d.labels[0] == label for d in part) for part in (dev, test)]
        assert kept[0] == kept[1] and (kept[0] >= 1 if count >= 3 else kept[0] == 0)


def test_query_like_rows_are_question_sized_and_short_docs_count_whole() -> None:
    long = Doc("L", "屏幕碎了怎么办？" * 3 + "电池不耐用怎么处理呢。" * 6, ("屏幕",))
    short = Doc("S", "屏幕裂了能修吗？", ("屏幕",))
    rows = query_like([long, short], seed=1)
    assert len(rows) == 2 and all(r.labels == ("屏幕",) and r.text in long.text for r in rows)
    whole = query_like([long, short], seed=1, whole_short=True)
    assert whole[-1].text == short.text and len(whole) == 3


def test_a_data_dir_with_query_splits_uses_them(env: Path) -> None:
    s = load_settings()
    data = DemoData(s.data_dir)
    splits = load_splits(s, data, Taxonomy.load(data.taxonomy))
    assert splits.cold_start is None and splits.dev and splits.test and splits.docs


def docs_only(env: Path, rows: list[dict[str, object]]) -> DemoData:
    data = DemoData(load_settings().data_dir)
    shutil.rmtree(data.split("train").parent)
    write_jsonl(data.docs, rows)
    return data


def test_the_cold_start_learns_from_docs_and_measures_on_passages_of_docs_it_never_saw(env: Path) -> None:
    rows = long_docs()
    data = docs_only(env, rows)
    s = load_settings()
    splits = load_splits(s, data, Taxonomy.load(data.taxonomy))
    assert splits.cold_start == {"docs": {"train": 18, "dev": 3, "test": 3}, "passages": 6}
    texts = {str(r["id"]): str(r["text"]) for r in rows}
    learnt = {t for t in texts.values() if any(ex.text in t for ex in [*splits.train, *splits.docs])}
    for ex in [*splits.dev, *splits.test]:  # measured on passages of docs the voters never learnt from
        owner = [t for t in texts.values() if ex.text in t]
        assert len(ex.text) <= 48 and owner and not set(owner) & learnt
    code, out = run("train", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["cold_start"] == splits.cold_start and report["dev"]["rows"] == 6
    assert all(v.meta["version"] == report["version"] for v in load_pair(s.voters_dir))


def test_nothing_to_learn_from_is_a_clear_error(env: Path) -> None:
    data = docs_only(env, long_docs()[: MIN_COLD_DOCS - 1])
    code, out = run("train")
    assert code != 0 and f"needs at least {MIN_COLD_DOCS}" in out and "Traceback" not in out
    data.docs.unlink()
    with pytest.raises(DataError, match=r"labelled queries .* or labelled docs"):
        load_splits(load_settings(), data, Taxonomy.load(ROOT / "data" / "taxonomy.yaml"))
