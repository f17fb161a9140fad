"""`labelgate ask -o NAME=VALUE`: per-run options from the command line, validated like every other edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cli.common import option_pairs
from app.core.errors import InputError
from tests.unit.app.cli.test_cli import env, run

__all__ = ["env"]  # the CLI's tiny data dir and LABELGATE_* settings (a fixture)

names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


@given(name=names, number=st.integers(-1000, 1000), flag=st.booleans())
def test_values_are_json_where_they_parse(name: str, number: int, flag: bool) -> None:
    assert option_pairs([f"{name}={number}"]) == {name: number}
    assert option_pairs([f"{name}={str(flag).lower()}"]) == {name: flag}
    assert option_pairs([f"{name}=before_answer"]) == {name: "before_answer"}


@pytest.mark.parametrize("item", ["top_k", "=3", " =3"])
def test_a_pair_without_name_or_value_is_refused(item: str) -> None:
    with pytest.raises(InputError, match="NAME=VALUE"):
        option_pairs([item])


def test_ask_with_options(env: Path) -> None:
    assert run("train")[0] == 0 and run("index")[0] == 0
    code, out = run("ask", "屏幕裂了", "-o", "top_k=1", "--option", "llm=false", "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert len(answer["docs"]) == 1 and {"option:top_k=1", "option:llm=false"} <= set(answer["reasons"])
    code, out = run("ask", "屏幕裂了")
    assert code == 0 and "docs: D" in out, out  # the plain output names the docs by doc_id
    code, out = run("ask", "屏幕裂了", "-o", "top_k=0")
    assert code == 2 and "top_k" in out, out
    code, out = run("ask", "屏幕裂了", "-o", "top_k")
    assert code == 2 and "NAME=VALUE" in out, out
