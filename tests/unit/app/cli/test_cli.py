"""The CLI end to end on a tiny data dir with tiny random-init encoders: train, index, ask, review, demo, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.config import TrainSettings
from tests.conftest import ROOT, ROWS, SEED_DOCS, write_jsonl


@pytest.fixture()
def env(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ROOT / "data" / "taxonomy.yaml", data / "taxonomy.yaml")
    for split, suffix in (("train", ""), ("dev", "呀"), ("test", "啊")):
        write_jsonl(
            data / "queries" / f"{split}.jsonl",
            [{"text": t + suffix, "labels": [label]} for label, texts in ROWS.items() for t in texts],
        )
    write_jsonl(
        data / "kb" / "docs.jsonl",
        [{"id": i, "text": t, "labels": labels} for i, t, labels in SEED_DOCS]
        + [{"id": "U1", "text": "屏幕更换需要预约。"}],
    )  # no labels: the voters label it at index time
    (data / "rules.yaml").write_text("rules:\n  - id: promo\n    labels: [活动优惠]\n    keywords: [活动]\n", "utf-8")
    (data / "samples.yaml").write_text("samples:\n  - text: 屏幕裂了\n  - text: 今天天气怎么样\n", "utf-8")
    for key, value in {
        "DATA_DIR": data,
        "HOME": tmp_path / "home",
        "ENCODER_A": tiny_encoder_dir,
        "ENCODER_B": tiny_encoder_dir,
        "EMBEDDER": tiny_encoder_dir,
        "TRAIN__EPOCHS_A": 1,
        "TRAIN__EPOCHS_FULL": 1,
        "TRAIN__EPOCHS_B": 5,
        "COLLECTION": "cli-test",
        "LLM_LOCAL": "false",  # unit tests never start the local LLM
    }.items():
        monkeypatch.setenv(f"LABELGATE_{key}", str(value))
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    """(exit code, stdout) — or the whole output (stderr included) when the command failed."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_train_index_ask_review_demo(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run("train", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert set(report["test"]["voters"]) == {"A", "B"}
    assert (env / "home" / "voters" / "A" / "CURRENT").is_file()
    code, out = run("index")
    assert code == 0, out
    assert json.loads(out)["chunks"] == len(SEED_DOCS) + 1
    assert json.loads(run("index")[1])["upserted"] == 0  # idempotent
    code, out = run("ask", "屏幕裂了", "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert {"answer", "labels", "decision", "reasons", "docs", "pending_review", "thread_id"} <= set(answer)
    assert all({"doc_id", "chunk_id", "score"} <= set(doc) for doc in answer["docs"])
    monkeypatch.setenv("LABELGATE_VOTE__MIN_MARGIN", "1.0")  # unreachable: the gate escalates, no LLM → review
    code, out = run("ask", "屏幕裂了", "--json")
    paused = json.loads(out)
    assert code == 0 and paused["pending_review"] and paused["path"][-1] == "review", out
    code, out = run("review", "list", "--json")
    assert code == 0 and paused["thread_id"] in {p["thread_id"] for p in json.loads(out)}, out
    code, out = run("review", "resolve", paused["thread_id"], "--labels", "屏幕", "--reviewer", "alice", "--json")
    assert code == 0, out
    done = json.loads(out)
    assert done["label_source"] == "human" and "屏幕" in done["labels"] and done["answer"]
    assert paused["thread_id"] not in {p["thread_id"] for p in json.loads(run("review", "list", "--json")[1])}
    monkeypatch.delenv("LABELGATE_VOTE__MIN_MARGIN")
    feedback = json.loads(run("feedback", "list")[1])
    assert [(f["source"], f["reviewer"], f["thread_id"]) for f in feedback] == [("human", "alice", paused["thread_id"])]
    code, out = run("feedback", "export", "--out", str(env / "fb.jsonl"))
    assert code == 0 and out.startswith("1 rows")
    assert json.loads((env / "fb.jsonl").read_text(encoding="utf-8"))["text"] == "屏幕裂了"
    code, out = run("demo", "--json")
    assert code == 0, out
    demo = json.loads(out)
    for key in (
        "dense_top3_before",
        "dense_top3_after",
        "gated_top3_after",
        "dense_top3_full",
        "gated_top3_full",
        "dense_purity_full",
        "gated_purity_full",
        "samples",
    ):
        assert key in demo
    assert len(demo["samples"]) == 2
    monkeypatch.setenv("LABELGATE_TRAIN__FEEDBACK_MIN_LABEL_ROWS", "0")  # the reviewed row counts `repeat` times
    code, out = run("retrain", "--json")
    assert code == 0, out
    retrained = json.loads(out)
    assert retrained["feedback_rows"] == 1 and len(retrained["comparison"]) == 5
    assert retrained["comparison"][0].startswith("feedback_learned")
    train_texts = {t for texts in ROWS.values() for t in texts}
    repeat = TrainSettings().feedback_repeat  # feedback replaces the training row with its text, counted `repeat` times
    docs = len(SEED_DOCS)  # the labelled KB docs (one chunk each) are training rows too; the unlabelled U1 is not
    assert retrained["candidate"]["doc_rows"] == docs
    assert retrained["candidate"]["train_rows"] == len(train_texts - {"屏幕裂了"}) + repeat + docs
    code, out = run("models", "rollback")
    if retrained["promoted"]:
        assert code == 0 and f"→ {retrained['current']['version']}" in out, out
    else:
        assert code == 2 and "nothing to roll back" in out, out


def test_errors_are_clear_and_exit_2(env: Path) -> None:
    code, out = run("ask", "屏幕裂了")
    assert code == 2 and "labelgate train" in out  # nothing trained yet
    code, out = run("review", "resolve", "t1", "--labels", "屏幕", "--reviewer", "alice")
    assert code == 2 and "error:" in out
    (env / "data" / "queries" / "train.jsonl").write_text('{"text": "x", "labels": ["NOPE"]}\n', "utf-8")
    code, out = run("train")
    assert code == 2 and "train.jsonl:1" in out and "NOPE" in out


def test_bench_all_in_one_writes_the_documented_keys(env: Path) -> None:
    assert run("train")[0] == 0
    corpus = env / "corpus"
    write_jsonl(corpus / "sentences.jsonl", [{"text": f"第{i}句：屏幕和电池的问题{i % 7}"} for i in range(1100)])
    dataset = env / "public"  # a public-dataset layout: label + domain, no dev split
    rows = [
        {"text": t + end, "label": lab, "domain": "d1"} for lab, ts in ROWS.items() for t in ts for end in "。？！～"
    ]
    write_jsonl(dataset / "train.jsonl", rows)
    flat = env / "flat"  # no domains: every label is coarse (as SMP2017)
    write_jsonl(flat / "train.jsonl", [{"text": r["text"], "label": r["label"]} for r in rows])
    write_jsonl(flat / "test.jsonl", [{"text": r["text"] + "呢", "label": r["label"]} for r in rows[::4]])
    write_jsonl(
        dataset / "test.jsonl",
        [{"text": t + "吗", "label": lab, "domain": "d1"} for lab, ts in ROWS.items() for t in ts],
    )
    out = env / "bench.json"
    code, text = run(
        "bench", "--out", str(out), "--chunks", "150", "--queries", "12", "--llm-queries", "0", "--per-level", "4",
        "--corpus", str(corpus), "--index-sample", "100", "--train-data", str(dataset), "--train-sizes", "30,90",
        "--int8-data", str(flat),
    )  # fmt: skip
    assert code == 0, text
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["kb_chunks"] == 150 and report["queries"] == 12
    for key in ("gate_p50_ms", "path_p50_ms", "peak_rss_mb", "langgraph_overhead_p50_ms", "index_chunks_per_s"):
        assert report[key] > 0, key
    assert report["llm_only_p50_ms"] is None and report["speedup_vs_llm_only"] is None  # no LLM here: said, not faked
    assert 0 <= report["auto_share"] <= 1 and set(report["throughput_qps"]) == {"1", "4", "16"}
    assert {"classify", "vote"} <= set(report["graph"]["nodes"])
    small, large = (p["rows"] for p in report["train_curve"]["points"])
    assert 20 <= small < large <= 110
    assert set(report["int8"]["dataset"]["by_runtime"]) == {"torch", "onnx-int8"} and report["failed"] == []
    code, text = run(
        "bench", "--chunks", "150", "--queries", "10", "--llm-queries", "0", "--per-level", "2",
        "--corpus", str(corpus), "--index-sample", "100", "--train-data", "", "--int8-data", str(env / "nope"),
        "--out", str(out),
    )  # fmt: skip
    assert code == 1 and "bench sections failed: int8" in text  # a failed section is said, the rest is kept
    assert json.loads(out.read_text(encoding="utf-8"))["gate_p50_ms"] > 0
    again = run(
        "bench", "--chunks", "150", "--queries", "12", "--llm-queries", "0", "--per-level", "2",
        "--corpus", str(corpus), "--index-sample", "100", "--train-data", "", "--int8-data", "",
    )  # fmt: skip
    assert json.loads(again[1])["kb_build"]["grown"]["upserted"] == 0  # the grown KB is reused, not rebuilt


def test_fast_training_mode_serves_a_head_on_the_int8_encoder(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_TRAIN__MODE", "fast")
    monkeypatch.setenv("LABELGATE_MODEL_DIR", str(env / "models"))
    code, out = run("train", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["mode"] == "fast" and list(report["test_by_runtime_a"]) == ["onnx-int8"]
    voter_a = env / "home" / "voters" / "A"
    meta = json.loads((voter_a / (voter_a / "CURRENT").read_text().strip() / "meta.json").read_text("utf-8"))
    assert meta["kind"] == "frozen-head" and meta["prefix"] == "query: " and Path(meta["onnx"]).is_file()
    assert Path(meta["onnx"]).parent == env / "models" / "onnx"  # the encoder's own int8 export, built once
    code, out = run("ask", "屏幕裂了", "--json")
    assert code == 0, out
    assert json.loads(out)["decision"] in {"auto", "escalate"}
    Path(meta["onnx"]).unlink()
    code, out = run("ask", "屏幕裂了", "--json")
    assert code == 2 and "labelgate models build" in out


def test_full_tuning_saves_the_trained_layers_and_serves_them_on_both_runtimes(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from app.core.config import load_settings
    from app.core.data import DemoData, load_examples
    from app.core.errors import ModelNotBuiltError
    from app.core.taxonomy import Taxonomy
    from app.core.voters.store import load_voter

    monkeypatch.setenv("LABELGATE_TRAIN__MODE", "full")
    code, out = run("train", "--json")
    assert code == 0, out
    settings = load_settings()
    voter_a = settings.voters_dir / "A"
    version = (voter_a / "CURRENT").read_text().strip()
    meta = json.loads((voter_a / version / "meta.json").read_text("utf-8"))
    assert meta["kind"] == "full-pooled" and (voter_a / version / "encoder.safetensors").is_file()
    assert not (voter_a / version / "adapter").exists()
    texts = [
        ex.text
        for ex in load_examples(
            DemoData(settings.data_dir).split("test"), Taxonomy.load(DemoData(settings.data_dir).taxonomy)
        )
    ]
    torch_probs = load_voter(settings.voters_dir, "A", runtime="torch").probs(texts)
    int8_probs = load_voter(settings.voters_dir, "A", runtime="onnx-int8").probs(texts)
    assert torch_probs.shape == int8_probs.shape and np.abs(torch_probs - int8_probs).max() < 0.1
    (voter_a / version / "encoder.safetensors").unlink()
    with pytest.raises(ModelNotBuiltError, match="labelgate train"):
        load_voter(settings.voters_dir, "A", runtime="torch")
