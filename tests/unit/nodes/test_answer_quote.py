"""The answer node's worked example turn and its decisive-sentence fallback (fake chat models)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from nodes.answer import SOURCES_PREFIX, Answer, cited_ids, decisive_sentence, substance

SEED = "我的手机屏幕裂了，保修可以换吗？"
DOCS: list[Any] = [
    {"chunk_id": "D6#0", "doc_id": "D6", "title": "限时赠品活动", "text": "限时活动：购买手机赠送耳机和手机壳。"},
    {"chunk_id": "D2#0", "doc_id": "D2", "title": "屏幕免费维修", "text": "保修期内非人为损坏的屏幕可以免费维修。"},
    {"chunk_id": "D1#0", "doc_id": "D1", "title": "屏幕保修说明", "text": "屏幕损坏属于保修范围；可免费更换一次。"},
]


class Seen(BaseCallbackHandler):
    def __init__(self) -> None:
        self.messages: list[BaseMessage] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kw: Any) -> None:
        self.messages = messages[0]


def answer(reply: str, docs: list[Any] = DOCS, query: str = SEED) -> dict[str, Any]:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    return Answer(llm)({"query": query, "docs": docs, "labels": ["屏幕"], "reasons": []})


def test_the_decisive_sentence_shares_most_query_terms_and_prefers_cited_docs() -> None:
    assert decisive_sentence(SEED, DOCS, []) == ("D2", "保修期内非人为损坏的屏幕可以免费维修。")
    assert decisive_sentence(SEED, DOCS, ["D1"]) == ("D1", "屏幕损坏属于保修范围；")
    assert decisive_sentence("天气预报", DOCS, []) is None  # no shared term: nothing to quote


def test_a_bare_yes_gets_the_decisive_sentence_quoted_and_cited() -> None:
    out = answer("可以。")
    assert out["answer"] == "可以。\n\n资料原文 [D2]：保修期内非人为损坏的屏幕可以免费维修。"
    assert out["citations"] == ["D2"] and out["reasons"] == ["answer:decisive_sentence_quoted"]
    cited = answer("可以 [D1]")
    assert cited["answer"].endswith("资料原文 [D1]：屏幕损坏属于保修范围；") and cited["citations"] == ["D1"]


def test_a_full_answer_is_left_as_it_is() -> None:
    text = "可以：保修期内、非人为损坏的屏幕可以免费维修 [D2]。"
    assert answer(text) == {"answer": text, "answer_kind": "llm", "citations": ["D2"]}
    uncited = answer("可以，保修期内非人为损坏的屏幕免费维修，请带发票到店。")
    assert uncited["answer"].endswith(SOURCES_PREFIX + "[D6] [D2] [D1]")


def test_the_worked_example_is_a_turn_before_the_docs() -> None:
    seen = Seen()
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="可以免费维修 [D2]。")]), callbacks=[seen])
    Answer(llm)({"query": SEED, "docs": DOCS, "labels": ["屏幕"]})
    system, example_q, example_a, data = seen.messages
    assert (example_q.type, example_a.type, data.type) == ("human", "ai", "human")
    assert "[X1]" in example_a.content and "<资料>" in example_q.content
    assert "[D2]" in data.content and "[D2]" not in system.content and "X1" not in data.content


@given(st.text(alphabet="可以不能保修免费。，[]D12 ", max_size=40))
def test_the_llm_text_always_leads_and_a_quote_only_follows_a_shorter_answer(reply: str) -> None:
    out = answer(reply)
    if out["answer_kind"] != "llm":
        return  # empty reply: the passages fallback
    assert out["answer"].startswith(reply.strip())
    quoted = "answer:decisive_sentence_quoted" in out.get("reasons", [])
    decisive = decisive_sentence(SEED, DOCS, cited_ids(reply, DOCS))
    assert decisive is not None and quoted == (substance(reply) < substance(decisive[1]))
    assert not quoted or out["answer"].endswith(f"资料原文 [{decisive[0]}]：{decisive[1]}")


def test_substance_ignores_ids_spaces_and_punctuation() -> None:
    assert substance("可以 [D1]，免费。") == substance("可以免费") == 4
