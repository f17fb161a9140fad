"""`labelgate eval classify` end to end on a small dataset with tiny random-init encoders (every mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.errors import ConfigError, DataError
from app.ops.eval.classify import run_classify_eval
from app.ops.eval.report import classify_html

TOPICS = {"refund": ("billing", "money back"), "invoice": ("billing", "bill copy"), "alarm": ("utility", "wake me")}
TOP_KEYS = (
    "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "auto_coverage", "auto_precision", "agreement", "ece",
)  # fmt: skip


def write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def dataset(root: Path, n: int = 12) -> Path:
    for split, count in (("train", n), ("test", n // 2)):
        rows: list[dict[str, object]] = [
            {"text": f"{words} please {i}", "label": label, "domain": domain}
            for label, (domain, words) in TOPICS.items()
            for i in range(count)
        ]
        rows += [{"text": f"tell me a riddle {i}", "label": "oos", "domain": "oos"} for i in range(count // 2)]
        write(root / f"{split}.jsonl", rows)
    return root


@pytest.mark.parametrize("mode", ["fast", "lora", "full"])
def test_eval_classify_reports_every_key_for_gate_and_voters(settings, tiny_encoder_dir, tmp_path, mode) -> None:  # type: ignore[no-untyped-def]
    local = settings.model_copy(
        update={
            "encoder_a": str(tiny_encoder_dir),
            "encoder_b": str(tiny_encoder_dir),
            "train": settings.train.model_copy(update={"epochs_a": 1, "epochs_full": 1, "epochs_b": 10}),
        }
    )
    result = run_classify_eval(local, dataset(tmp_path / "ds"), mode=mode, oos_label="oos")
    assert result["mode"] == mode and result["rows"]["test"] == 21 and result["oos_label"] == "oos"
    for where in (result, result["voters"]["A"], result["voters"]["B"]):
        for key in TOP_KEYS:
            assert 0.0 <= where[key] <= 1.0, key
        assert where["train_seconds"] >= 0
        assert len(where["risk_coverage"]) == 20 and where["reliability"]
    assert result["voters"]["A"]["kind"] == {"lora": "lora-pooled", "full": "full-pooled", "fast": "frozen-head"}[mode]
    assert result["worst_labels"] and 0 <= result["selective"]["coverage"] <= 1
    page = classify_html(result)
    assert page.count("<svg") == 4 and "Risk–coverage" in page and "worst labels" in page.lower()


def test_cli_writes_json_and_report_and_names_the_bad_line(tmp_path: Path) -> None:
    bad = dataset(tmp_path / "bad")
    with (bad / "test.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "   ", "label": "alarm"}) + "\n")
    result = CliRunner().invoke(app, ["eval", "classify", "--data", str(bad)])
    assert result.exit_code == 2 and "test.jsonl:22" in result.output and "'text'" in result.output
    (bad / "extra.jsonl").write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "classify", "--data", str(bad)])
    assert result.exit_code == 2 and "unknown split files ['extra.jsonl']" in result.output
    result = CliRunner().invoke(app, ["eval", "classify", "--data", str(tmp_path / "ds"), "--mode", "half"])
    assert result.exit_code == 2 and "--mode" in result.output


def test_a_labelgate_data_dir_is_used_as_it_is(settings, tiny_encoder_dir) -> None:  # type: ignore[no-untyped-def]
    local = settings.model_copy(
        update={
            "encoder_a": str(tiny_encoder_dir),
            "encoder_b": str(tiny_encoder_dir),
            "train": settings.train.model_copy(update={"epochs_b": 5}),
        }
    )
    result = run_classify_eval(local, settings.data_dir)
    lines = {n: sum(1 for _ in (settings.data_dir / "queries" / f"{n}.jsonl").open()) for n in ("train", "dev", "test")}
    assert result["rows"] == lines and result["oos_label"] == "其他" and result["multi_label"] is True
    assert not (settings.home / "eval").exists() or not any(
        p.name.startswith("data-") for p in (settings.home / "eval").iterdir()
    )
    with pytest.raises(DataError, match="not a label"):
        run_classify_eval(local, settings.data_dir, oos_label="nope")
    with pytest.raises(ConfigError, match="mode must be one of"):
        run_classify_eval(local, settings.data_dir, mode="half")
