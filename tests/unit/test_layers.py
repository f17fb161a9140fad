"""The layers drawn in the README hold: import-linter's contracts (pyproject.toml [tool.importlinter]) are kept, and
a contract does catch an import that goes the wrong way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' (import-linter)")
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_core_module_importing_upwards_breaks_the_contract(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for name in ("app", "graph", "nodes"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.html"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    metrics = tree / "app" / "core" / "metrics.py"
    metrics.write_text(metrics.read_text(encoding="utf-8") + "\nfrom graph import builder  # noqa\n", encoding="utf-8")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "app.core.metrics -> graph.builder" in done.stdout
