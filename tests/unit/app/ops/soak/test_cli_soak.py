"""`labelgate soak`: script selection, clear errors, the summary line, exit 1 when a counter is not zero."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.ops.soak import SCRIPTS, SoakResult
from tests.unit.app.ops.soak.conftest import tiny_data


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_unknown_or_missing_scripts_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = invoke("soak", "--only", "durable,nope")
    assert code == 2 and "unknown soak script nope" in out and "durable, load, faults" in out
    monkeypatch.setitem(SCRIPTS, "faults", "app.ops.soak.not_built_here")
    code, out = invoke("soak", "--only", "faults")
    assert code == 2 and "not in this build" in out and "Traceback" not in out


def test_a_failing_script_exits_1_after_the_summary_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def run(settings: object, workdir: Path, *, quick: bool) -> SoakResult:
        result = SoakResult("durable", figures={"threads": 3, "quick": quick})
        result.count("feedback_doubled", 2)
        return result

    module = types.ModuleType("soak_double")
    module.__spec__ = importlib.machinery.ModuleSpec("soak_double", None)
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "soak_double", module)
    monkeypatch.setitem(SCRIPTS, "durable", "soak_double")
    monkeypatch.setenv("LABELGATE_HOME", str(tmp_path / "home"))
    code, out = invoke("soak", "--only", "durable", "--quick", "--out", str(tmp_path / "soak.json"))
    assert code == 1, out
    last = out.strip().splitlines()[-1]
    assert last == "soak: reviews_lost=0 feedback_lost=0 feedback_doubled=2 errors=0 leaks=0"
    report = json.loads((tmp_path / "soak.json").read_text(encoding="utf-8"))
    assert report["summary"] == last and report["results"][0]["figures"] == {"threads": 3, "quick": True}


@pytest.mark.server  # the quick load script also drives uvicorn over HTTP
def test_quick_load_on_a_home_without_voters_uses_tiny_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in {
        "DATA_DIR": tiny_data(tmp_path),
        "HOME": tmp_path / "home",
        "MODEL_DIR": tmp_path / "models",
        "LLM_LOCAL": "false",
    }.items():
        monkeypatch.setenv(f"LABELGATE_{key}", str(value))
    code, out = invoke("soak", "--only", "load", "--quick", "--out", str(tmp_path / "soak.json"))
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "soak: reviews_lost=0 feedback_lost=0 feedback_doubled=0 errors=0 leaks=0"
    [load] = json.loads((tmp_path / "soak.json").read_text(encoding="utf-8"))["results"]
    assert load["figures"]["models"]["voters"] == "tiny" and load["figures"]["http"]["turns"] == 100
    assert not (tmp_path / "home" / "voters").exists()  # the tiny voters live in the scratch home only
