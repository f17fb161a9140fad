"""`labelgate eval answers`: the committed judged set is judgeable, the judge's rules, and both modes end to end with
a fake chat model over the test components."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import DataError
from app.ops.eval.answers import JudgedQuestion, judge, load_judged, run_answer_eval, unsupported_numbers
from app.testing import fake_chat

ROOT = Path(__file__).resolve().parents[5]
FACTS = (re.compile("免费"), re.compile("非人为"))
SEED = JudgedQuestion("q001", "我的手机屏幕裂了，保修可以换吗？", ("D1", "D2"), FACTS)


def test_the_committed_set_is_judgeable() -> None:
    """20+ questions; every doc exists; each fact is stated by one of the question's cited docs (so it can be met)."""
    questions = load_judged(ROOT / "data" / "answers.yaml")
    docs = {row["id"]: row["text"] for row in map(json.loads, (ROOT / "data/kb/docs.jsonl").open(encoding="utf-8"))}
    assert len(questions) >= 20 and len({q.id for q in questions}) == len(questions)
    assert questions[0].query == "我的手机屏幕裂了，保修可以换吗？" and questions[0].cite == ("D1", "D2")
    for q in questions:
        assert q.facts and set(q.cite) | set(q.distractors) <= set(docs), q.id
        assert not set(q.cite) & set(q.distractors), q.id
        for fact in q.facts:
            assert any(fact.search(docs[d]) for d in q.cite), (q.id, fact.pattern)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("questions: []\n", "non-empty 'questions'"),
        ("questions:\n  - just text\n", "each entry must be a mapping"),
        ("questions:\n  - {query: q, cite: [], facts: [a]}\n", "at least one 'cite'"),
        ("questions:\n  - {query: q, cite: [D1], facts: ['(']}\n", "bad fact regex"),
        ("questions:\n  - {query: q, cite: [D1], facts: [1]}\n", "lists of non-empty strings"),
    ],
)
def test_a_bad_set_is_a_data_error(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(why)):
        load_judged(tmp_path / "a.yaml")


def test_judge_wants_an_llm_answer_with_every_fact_and_an_inline_citation() -> None:
    assert judge(SEED, "保修期内非人为损坏可免费换 [D2]。", "llm")["worth_showing"]
    assert judge(SEED, "可以免费换 [D2]。", "llm")["missing_facts"] == ["非人为"]
    appended = judge(SEED, "保修期内非人为损坏可免费换。\n\n参考资料：[D1] [D2]", "llm")
    assert appended["fact_stated"] and not appended["cited_inline"] and not appended["worth_showing"]
    assert not judge(SEED, "[D1] 非人为损坏免费", "passages")["worth_showing"]  # the raw passages are no answer
    ad = dataclasses.replace(SEED, distractors=("KB136",))
    assert judge(ad, "非人为损坏免费 [D1]，加购碎屏险 [KB136]", "llm")["cited_distractor"] == ["KB136"]


def test_numbers_no_shown_doc_states_are_flagged() -> None:
    answer = "三个月内免费维修 [D1]，价格 59–99 元，保修六个月。\n\n参考资料：[D2] 300"
    assert unsupported_numbers(answer, ["整机保修一年，电池保修六个月。", "价格 99 元"]) == ["三", "59"]


fake = fake_chat


@pytest.mark.parametrize("docs", ["graph", "judged"])
def test_both_modes_score_the_answers(components: Any, docs: str) -> None:
    bare = dataclasses.replace(SEED, id="bare")
    llm = fake("保修期内非人为损坏的屏幕可以免费维修 [D2]。", "可以。")
    seen: list[dict[str, Any]] = []
    c = dataclasses.replace(components, llm=llm)
    result = run_answer_eval(c, [SEED, bare], docs=docs, progress=seen.append)  # type: ignore[arg-type]
    first, second = result["rows"]
    assert seen == result["rows"] and first["unsupported_numbers"] == [] and result["unsupported_numbers"] == 0.0
    assert first["worth_showing"] and first["retrieved_cited_doc"] and not first["fallback_quoted"]
    assert second["fallback_quoted"] == "shorter" and second["answer"].startswith("可以。\n\n资料原文 [D")  # the quote
    assert result["questions"] == 2 and result["cited_inline"] == 1.0 and set(result["latency"]) >= {"p50_ms"}
    if docs == "judged":
        assert sorted(first["docs"]) == ["D1", "D2"]


def test_no_llm_is_a_clear_error(components: Any) -> None:
    from app.core.errors import LLMServerError

    with pytest.raises(LLMServerError, match="no LLM"):
        run_answer_eval(components, [SEED])
