"""`labelgate bench extract --no-llm` on the keyword voters: the gate part runs the graph's nodes the way the graph
reduces their updates (the classify flags and the vote's reasons kept apart)."""

from __future__ import annotations

import dataclasses

from app.core.data import Example
from app.core.fewshot import ExampleStore
from app.ops.eval.llm import bench_extract
from app.testing import CharEncoder

ROWS = [
    Example("我的手机屏幕裂了，保修可以换吗？", ("售后", "屏幕", "保修政策")),  # auto
    Example("修好的进度怎么样了", ("售后", "维修进度")),  # the voters disagree: escalates
    Example("电池续航不行", ("售后", "电池")),  # auto
]


def test_the_gate_part_runs_without_an_llm(components, taxonomy) -> None:  # type: ignore[no-untyped-def]
    examples = ExampleStore(CharEncoder(), taxonomy, base=ROWS)
    result = bench_extract(dataclasses.replace(components, examples=examples), ROWS, llm=False)
    assert result["rows"] == 3 and result["escalated"] == 1
