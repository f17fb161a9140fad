"""Per-run options (graph/options.py, the graph's context_schema): validated at the edge, settings as defaults, and
each one changes what a run does — through the Assistant and through the compiled graph's own `context`."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from app.core.config import RerankWeights, VoteSettings
from app.core.errors import InputError
from app.service.api import Assistant
from graph.options import NO_OPTIONS, RunOptions, option_reasons, options_of, parse_options

SEED = "我的手机屏幕裂了，保修可以换吗？"  # auto with the keyword voters: 售后/屏幕/保修政策
PROVISIONAL = "修好的进度怎么样了"  # escalates; 售后 reviews after the answer by the taxonomy
BEFORE = "你们宣传的和实际不一样"  # escalates; 投诉 reviews before the answer by the taxonomy

unit = st.floats(0, 1, allow_nan=False)


@given(margin=st.none() | unit, agreement=st.none() | unit, base=st.builds(VoteSettings, min_margin=unit))
def test_vote_options_override_only_what_they_set(margin: float | None, agreement: float | None, base: Any) -> None:
    merged = RunOptions(min_margin=margin, min_fine_agreement=agreement).vote(base)
    assert merged.min_margin == (base.min_margin if margin is None else margin)
    assert merged.min_fine_agreement == (base.min_fine_agreement if agreement is None else agreement)


@given(sem=st.none() | st.floats(0, 5), lab=st.none() | st.floats(0, 5))
def test_rerank_options_override_only_what_they_set(sem: float | None, lab: float | None) -> None:
    base = RerankWeights()
    merged = RunOptions(rerank_semantic=sem, rerank_label=lab).rerank(base)
    assert merged.semantic == (base.semantic if sem is None else sem)
    assert merged.label == (base.label if lab is None else lab) and merged.keyword == base.keyword


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"top_k": 0}, "top_k"),
        ({"min_margin": 1.5}, "min_margin"),
        ({"review_mode": "never"}, "review_mode"),
        ({"llm": "maybe"}, "llm"),
        ({"topk": 3}, "topk"),
        (["top_k", 3], "mapping"),
    ],
)
def test_bad_options_are_a_clear_input_error(raw: Any, names: str) -> None:
    with pytest.raises(InputError, match=names):
        parse_options(raw)


def test_options_from_the_runtime_and_their_reasons() -> None:
    runtime = dataclasses.make_dataclass("R", [("context", object)])
    assert options_of(runtime(None)) is NO_OPTIONS and options_of(None) is NO_OPTIONS
    assert options_of(runtime({"top_k": 2})) == RunOptions(top_k=2)
    assert option_reasons(RunOptions(top_k=2, llm=False)) == ["option:top_k=2", "option:llm=false"]


def test_a_bad_option_is_refused_before_any_work(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    with pytest.raises(InputError, match="top_k"):
        assistant.ask(SEED, "t-bad", options={"top_k": 0})
    assert not assistant.graph.get_state({"configurable": {"thread_id": "t-bad"}}).values


def test_top_k_and_rerank_weights_per_run(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    default = assistant.ask(SEED)
    one = assistant.ask(SEED, options={"top_k": 1})
    assert len(default.docs) == components.settings.top_k == 3 and len(one.docs) == 1
    assert "option:top_k=1" in one.reasons and not any(r.startswith("option:") for r in default.reasons)
    semantic_only = assistant.ask(SEED, options={"rerank_semantic": 1, "rerank_label": 0, "rerank_keyword": 0})
    for doc in semantic_only.docs:
        assert doc["scores"]["fused"] == pytest.approx(doc["scores"]["semantic_norm"], abs=1e-3)


def test_vote_margin_per_run(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    assert assistant.ask(SEED).decision == "auto"
    strict = assistant.ask(SEED, options={"min_margin": 1.0})  # no margin reaches 1: the vote escalates
    assert strict.decision == "escalate" and "option:min_margin=1.0" in strict.reasons


def test_review_mode_per_run(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    by_taxonomy = assistant.ask(PROVISIONAL)
    assert by_taxonomy.route == "provisional" and by_taxonomy.answer
    first = assistant.ask(PROVISIONAL, options={"review_mode": "before_answer"})
    assert first.route == "review" and first.pending_review and not first.answer
    assert first.path == ["classify", "vote", "extract", "rules", "review"]
    assert assistant.ask(BEFORE).route == "review"
    later = assistant.ask(BEFORE, options={"review_mode": "after_answer"})
    assert later.route == "provisional" and later.answer and later.labels == ["投诉"]


def test_llm_off_per_run(components) -> None:  # type: ignore[no-untyped-def]
    llm = FakeListChatModel(responses=["屏幕损坏属于保修范围，可免费更换一次 [D1]。"] * 4)
    assistant = Assistant(dataclasses.replace(components, llm=llm))
    on = assistant.ask(SEED)
    assert on.route == "auto" and "answer:passages_llm_off_for_run" not in on.reasons
    calls = llm.i
    off = assistant.ask(SEED, options={"llm": False})
    assert "answer:passages_llm_off_for_run" in off.reasons and "option:llm=false" in off.reasons
    assert llm.i == calls  # the LLM was not called in that run
    escalated = assistant.ask(PROVISIONAL, options={"llm": False})
    assert "extract_skipped:llm_off_for_run" in escalated.reasons


def test_the_compiled_graph_takes_options_as_its_context(components) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(components)
    config = {"configurable": {"thread_id": "ctx"}}
    out = assistant.graph.invoke({"query": SEED}, config, context={"top_k": 2})  # a dict, as Studio and the SDK send
    assert len(out["docs"]) == 2 and "option:top_k=2" in out["reasons"]
    again = assistant.graph.invoke({"query": SEED}, config)  # the next run on the thread: settings again, reasons reset
    assert len(again["docs"]) == 3 and not any(r.startswith("option:") for r in again["reasons"])
    assert assistant.graph.builder.context_schema is RunOptions
    configured = {"configurable": {"thread_id": "cfg", "top_k": 1}}  # the pre-0.6 way: options in the run config
    assert len(assistant.graph.invoke({"query": SEED}, configured)["docs"]) == 1
