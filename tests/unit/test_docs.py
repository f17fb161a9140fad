"""The README stays a front page (≤ 300 lines) and the manuals stay true to the tree: every relative link in README.md
and docs/*.md resolves, every repository path they name in backticks exists, and mkdocs.yml lists every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"`\.?/?((?:app|graph|nodes|tests|data|prompts|docs|\.ci)/[A-Za-z0-9_.\-/]*)(?::[A-Za-z_]+)?`")


def prose(page: Path) -> str:
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move manuals to docs/"
    assert "make demo" in "\n".join(lines) and "make test" in "\n".join(lines)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_paths_resolve(page: Path) -> None:
    text = prose(page)
    broken = [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z]+:", target)
        and not target.startswith("#")
        and not (page.parent / target.split("#")[0]).exists()
    ]
    assert not broken, f"{page.name}: broken links {broken}"
    if page.name == "layout.md":  # its table names where each module was before the move, on purpose
        return
    missing = [p for p in PATH.findall(text) if "<" not in p and "*" not in p and not (ROOT / p).exists()]
    assert not missing, f"{page.name}: names paths that do not exist: {missing}"


def test_mkdocs_lists_every_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def files(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [f for value in nav.values() for f in files(value)]
        if isinstance(nav, list):
            return [f for item in nav for f in files(item)]
        return []

    assert sorted(files(config["nav"])) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
