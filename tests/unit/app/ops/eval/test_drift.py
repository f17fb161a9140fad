"""`labelgate eval drift` end to end on a small retrieval dataset with tiny random-init encoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.errors import ConfigError, DataError
from app.ops.eval.drift import METHODS, DriftOptions, run_drift_eval
from app.ops.eval.drift_report import drift_html
from app.ops.eval.retrieval import load_retrieval
from tests.conftest import ROOT

WORDS = {"电池": "电池续航充电耗电", "屏幕": "屏幕碎屏显示触控", "活动": "活动优惠赠送限时"}
METRICS = ("recall@10", "mrr", "ndcg@10", "purity@10")


def write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def dataset(root: Path, per_label: int = 40, sentences: int = 1) -> Path:
    docs, queries = [], []
    for c, (label, chars) in enumerate(WORDS.items()):
        for i in range(per_label):
            text = "。".join(
                "".join(chars[(i * 3 + j + s) % len(chars)] for j in range(6)) + f"问题{i}" for s in range(sentences)
            )
            docs.append({"id": f"d{c}-{i}", "text": text, "category": label})
        for i in range(6):
            relevant = [f"d{c}-{i}"] + ([f"d{c}-{i + 10}"] if i % 2 else [])
            queries.append(
                {
                    "id": f"q{c}-{i}",
                    "text": chars[i % 4 : i % 4 + 3] + "怎么办",
                    "category": label,
                    "relevant": relevant,
                    "hard_negatives": [f"d{c}-{i + 20}"],
                }
            )
    write(root / "docs.jsonl", docs)
    write(root / "queries.jsonl", queries)
    return root


@pytest.fixture()
def tiny(settings, tiny_encoder_dir):  # type: ignore[no-untyped-def]
    return settings.model_copy(
        update={
            "encoder_a": str(tiny_encoder_dir),
            "encoder_b": str(tiny_encoder_dir),
            "train": settings.train.model_copy(update={"epochs_b": 10}),
        }
    )


OPTIONS = DriftOptions(growth=(0.0, 1.0, 2.0), base_docs=12, train_docs=30, fetch_k=15)


def test_drift_reports_every_method_growth_and_metric(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_drift_eval(tiny, dataset(tmp_path / "ds"), OPTIONS)
    assert result["growth"] == ["0", "1", "2"] and result["queries"] + result["queries_skipped"] == 18
    assert set(result["results"]) == set(METHODS)
    for by_growth in result["results"].values():
        assert set(by_growth) == {"0", "1", "2"}
        for scores in by_growth.values():
            assert all(0.0 <= scores[m] <= 1.0 for m in METRICS)
    sizes = [result["kb_docs"][g] for g in ("0", "1", "2")]
    assert sizes[0] < sizes[1] < sizes[2] and sizes[2] == pytest.approx(3 * sizes[0], rel=0.01)
    oracle, dense = result["results"]["oracle"], result["results"]["dense"]
    assert all(oracle[g]["purity@10"] == 1.0 for g in oracle)  # gold filter: only the query's own labels
    assert dense["0"]["purity@10"] == 1.0 > dense["2"]["purity@10"]  # the base KB has only on-label docs
    held_out = result["labels"]["train_rows"] + result["labels"]["dev_rows"]  # training docs stay out of every KB
    assert result["labels"]["docs"]["rows"] == 120 - held_out and held_out >= 30
    assert set(result["tuning"]["ablation"]) == {"full", "no_label", "no_keyword", "semantic_only"}
    page = drift_html(result)
    assert page.count("<svg") == 4 and "2×" in page and "purity@10" in page


def test_gold_doc_labels_make_gated_retrieval_as_pure_as_its_query_labels(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    options = DriftOptions(**{**OPTIONS.__dict__, "gold_doc_labels": True})
    result = run_drift_eval(tiny, dataset(tmp_path / "ds"), options)
    assert result["doc_label_source"] == "gold" and result["labels"]["docs"]["exact"] == 1.0
    query_exact = result["labels"]["queries"]["exact"]
    # every returned doc carries the predicted query label; it is on topic exactly when that label is right
    assert result["results"]["gated"]["2"]["purity@10"] == pytest.approx(query_exact, abs=1e-4)


def test_tuning_picks_weights_on_dev_and_scores_the_rest(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_drift_eval(tiny, dataset(tmp_path / "ds"), DriftOptions(**{**OPTIONS.__dict__, "tune": True}))
    tuning = result["tuning"]
    assert tuning["dev_queries"] == 6 and result["queries"] + result["queries_skipped"] == 12
    assert tuning["dev_score"] >= tuning["settings_dev_score"]  # the grid contains weights at least as good
    assert sum(result["rerank_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(tuning["ablation"]) == {"settings", "full", "no_label", "no_keyword", "semantic_only"}


def test_a_kb_of_long_docs_learns_and_measures_its_query_labels_on_question_sized_passages(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = dataset(tmp_path / "ds", sentences=6)  # docs of 6 sentences, queries of one: no labelled query to learn from
    result = run_drift_eval(tiny, src, OPTIONS)
    labels, cold = result["labels"], result["labels"]["cold_start"]
    assert labels["passage_rows"] == 2 * labels["train_rows"] and cold["passages"] == 2 * labels["dev_rows"]
    assert set(cold["reliability"]) <= {"voters", "provisional"} and cold["reliability"]
    assert all(0.0 <= r <= 1.0 for r in cold["reliability"].values())
    assert result["query_label_reliability"] == cold["reliability"]  # what scales query trust without --tune
    tuned = run_drift_eval(tiny, src, DriftOptions(**{**OPTIONS.__dict__, "tune": True}))
    assert tuned["query_label_reliability"] == tuned["tuning"]["query_label_reliability"]  # dev queries measure it
    short = run_drift_eval(tiny, dataset(tmp_path / "short"), OPTIONS)
    assert short["labels"]["passage_rows"] == 0  # a one-sentence doc is its own passage: nothing new to learn
    short_cold = short["labels"]["cold_start"]  # ... and it is what calibration measures on (a short FAQ question)
    assert short_cold["passages"] == short["labels"]["dev_rows"] and short_cold["reliability"]


def test_bad_rows_name_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = dataset(tmp_path / "ds")
    lines = (root / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2]) | {"relevant": ["nope"]}
    (root / "queries.jsonl").write_text("\n".join([*lines[:2], json.dumps(row), *lines[3:]]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"queries.jsonl:3: relevant \['nope'\] are not ids in docs.jsonl"):
        load_retrieval(root)
    (root / "queries.jsonl").write_text('{"id": "q", "text": "x", "category": "电池"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"queries.jsonl:1: 'relevant' must be a non-empty list"):
        load_retrieval(root)
    (root / "docs.jsonl").write_text('{"id": "d", "text": " "}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"docs.jsonl:1: needs 'category'"):
        load_retrieval(root)
    (root / "docs.jsonl").unlink()
    with pytest.raises(DataError, match=r"missing docs\.jsonl"):
        load_retrieval(root)


def test_options_are_checked_before_any_work(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad_options = ({"growth": (1.0, 0.0)}, {"growth": (-1.0,)}, {"k": 10, "fetch_k": 5}, {"mode": "x"}, {"level": "x"})
    for bad in bad_options:
        with pytest.raises(ConfigError):
            run_drift_eval(tiny, tmp_path / "missing", DriftOptions(**{**OPTIONS.__dict__, **bad}))
    with pytest.raises(ConfigError, match="current-voters needs a labelgate data dir"):
        run_drift_eval(tiny, dataset(tmp_path / "ds"), DriftOptions(current_voters=True))


def test_cli_errors_exit_2_with_a_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "drift", "--data", str(tmp_path), "--growth", "0,x"])
    assert result.exit_code == 2 and "growth must be comma-separated numbers" in result.output
    result = runner.invoke(app, ["eval", "drift", "--data", str(tmp_path / "none")])
    assert result.exit_code == 2 and "not a directory" in result.output


def native_dir(root: Path) -> Path:
    """A labelgate data dir: the demo taxonomy, query splits to train on, kb/docs.jsonl and kb/queries.jsonl."""
    public = dataset(root / "public", per_label=16)
    label_of = {"电池": "电池", "屏幕": "屏幕", "活动": "活动优惠"}
    (root / "taxonomy.yaml").write_text((ROOT / "data" / "taxonomy.yaml").read_text(encoding="utf-8"), "utf-8")
    for name, file in (("docs", "docs.jsonl"), ("queries", "queries.jsonl")):
        rows = [json.loads(line) for line in (public / file).read_text(encoding="utf-8").splitlines()]
        for row in rows:
            row["labels"] = [label_of[row.pop("category")]]
            if name == "queries":
                row["relevant"] = [d for d in row["relevant"] if int(d.split("-")[1]) < 16]
                row["hard_negatives"] = []
        write(root / "kb" / file, rows)
    for split, n in (("train", 8), ("dev", 4)):
        write(
            root / "queries" / f"{split}.jsonl",
            [
                {"text": f"{WORDS[k][i % 4 : i % 4 + 2]}问{i}", "labels": [v]}
                for k, v in label_of.items()
                for i in range(n)
            ],
        )
    return root


def test_a_data_dir_trains_on_its_queries_and_labels_each_doc_with_voters_that_never_saw_it(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_drift_eval(tiny, native_dir(tmp_path / "data"), DriftOptions(growth=(0.0, 1.0), base_docs=8))
    labels = result["labels"]
    assert labels["trained_on"] == "queries/ splits" and labels["dev_rows"] == 12
    assert labels["train_rows"] == 24 + 48  # the query split plus every labelled KB doc (one chunk each)
    assert labels["doc_labels_by"].startswith("voters, 4-fold cross-fitted")
    assert labels["docs"]["rows"] == 48 and result["level"] == "coarse"


def chunked(root: Path) -> Path:
    """The dataset with every doc pre-cut into two chunks `<doc>#0`, `<doc>#1`; queries still name documents."""
    src = dataset(root)
    docs = [json.loads(line) for line in (src / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    half = [
        row | {"id": f"{row['id']}#{n}", "text": text}
        for row in docs
        for n, text in enumerate((row["text"][:4], row["text"][4:]))
    ]
    write(src / "docs.jsonl", half)
    return src


def test_doc_id_sep_scores_chunks_as_their_documents(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = chunked(tmp_path / "ds")
    with pytest.raises(DataError, match=r"relevant \['d0-0'\] are not ids in docs.jsonl.*--doc-id-sep '#'"):
        load_retrieval(src)
    data = load_retrieval(src, doc_id_sep="#")
    assert data.queries[1].relevant == ("d0-1#0", "d0-1#1", "d0-11#0", "d0-11#1")
    assert data.sources()[:3] == ["d0-0", "d0-0", "d0-1"]
    result = run_drift_eval(tiny, src, DriftOptions(**{**OPTIONS.__dict__, "doc_id_sep": "#", "base_docs": 24}))
    assert result["doc_id_sep"] == "#" and result["queries"] > 0
    for by_growth in result["results"].values():  # per document: recall can reach 1 although each doc is 2 chunks
        assert all(0.0 <= s["recall@10"] <= 1.0 for s in by_growth.values())
    assert result["results"]["dense"]["0"]["recall@10"] > 0.5
    runner = CliRunner()
    out = runner.invoke(app, ["eval", "drift", "--data", str(src), "--growth", "0", "--max-queries", "1"])
    assert out.exit_code == 2 and "--doc-id-sep" in out.output
