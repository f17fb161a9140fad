"""The answer node's worked example turn, its on-label docs and its decisive-sentence fallback (fake chat models)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from app.testing import fake_chat
from nodes.answer import (
    QUOTED,
    SOURCES_PREFIX,
    GenerateAnswer,
    cited_ids,
    decisive_sentence,
    numbers,
    on_label,
    quotes,
    substance,
    why_quote,
)

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


def answer(reply: str, docs: list[Any] = DOCS, query: str = SEED, **state: Any) -> dict[str, Any]:
    llm = fake_chat(reply)
    full: Any = {"query": query, "docs": docs, "labels": ["屏幕"], "reasons": [], **state}
    return GenerateAnswer(llm)(full)


FINGERPRINT: list[Any] = [
    {
        "doc_id": "K7",
        "title": "换屏后指纹失灵",
        "text": "换屏后需重新校准指纹；取机后指纹识别失灵的，7 天内回店可免费重新校准。",
    },
    {"doc_id": "K8", "title": "面部识别", "text": "面部识别失败请重新录入。"},
]


def test_the_decisive_sentence_is_a_whole_sentence_sharing_most_query_terms_preferring_cited_docs() -> None:
    assert decisive_sentence(SEED, DOCS, []) == ("D2", "保修期内非人为损坏的屏幕可以免费维修。")
    assert decisive_sentence(SEED, DOCS, ["D1"]) == ("D1", "屏幕损坏属于保修范围；可免费更换一次。")  # not cut at ；
    assert decisive_sentence("天气预报", DOCS, []) is None  # no shared term: nothing to quote
    assert decisive_sentence("换完屏指纹不好使了", FINGERPRINT, []) == ("K7", FINGERPRINT[0]["text"])


def test_a_bare_yes_gets_the_decisive_sentence_quoted_and_cited() -> None:
    out = answer("可以。")
    assert out["answer"] == "可以。\n\n资料原文 [D2]：保修期内非人为损坏的屏幕可以免费维修。"
    assert out["citations"] == ["D2"] and out["reasons"] == [f"{QUOTED}:shorter"]
    cited = answer("可以 [D1]")  # the cited doc's sentence, then the one that matches the question best
    d1, d2 = (
        "资料原文 [D1]：屏幕损坏属于保修范围；可免费更换一次。",
        "资料原文 [D2]：保修期内非人为损坏的屏幕可以免费维修。",
    )
    assert cited["answer"] == f"可以 [D1]\n\n{d1}\n\n{d2}"
    assert cited["citations"] == ["D1", "D2"] and cited["reasons"] == [f"{QUOTED}:shorter"] * 2


def test_an_answer_missing_the_sentences_period_or_negation_gets_it_quoted() -> None:
    query = "换完屏指纹不好使了"
    reply = "换屏后需重新校准指纹；取机后指纹识别失灵的，请尽快回原门店免费重新校准 [K7]。"
    no_period = answer(reply, FINGERPRINT, query)
    assert no_period["reasons"] == [f"{QUOTED}:number"]
    assert no_period["answer"].endswith("资料原文 [K7]：" + FINGERPRINT[0]["text"])
    stated = answer("取机后指纹失灵的，7 天内回原门店可免费重新校准 [K7]。", FINGERPRINT, query)
    assert stated["answer"] == "取机后指纹失灵的，7 天内回原门店可免费重新校准 [K7]。" and stated["reasons"] == []
    no_condition = answer("可以，屏幕损坏在保修范围内，可以免费更换屏幕一次 [D2]。")  # D2: 「非人为」 dropped
    assert no_condition["reasons"] == [f"{QUOTED}:negation"] and "非人为" in no_condition["answer"]


def test_numbers_are_digits_or_chinese_numerals_before_a_unit_never_doc_ids() -> None:
    assert numbers("7 天内、六个月内、899–1599 元 [D3]，不超过 80%") == ["7", "六", "899", "1599", "80"]
    assert numbers("[KB101] 屏幕") == []


def test_a_full_answer_is_left_as_it_is() -> None:
    text = "可以：保修期内、非人为损坏的屏幕可以免费维修 [D2]。"
    assert answer(text) == {"answer": text, "answer_kind": "llm", "citations": ["D2"], "reasons": []}


def test_an_uncited_answer_gets_the_decisive_sentence_quoted_else_the_sources() -> None:
    uncited = answer("可以，保修期内非人为损坏的屏幕免费维修，请带发票到店。")
    assert uncited["reasons"] == [f"{QUOTED}:uncited"] and uncited["citations"] == ["D2"]
    assert uncited["answer"].endswith("资料原文 [D2]：保修期内非人为损坏的屏幕可以免费维修。")
    unmatched = answer("请带发票到店检测，工程师会告诉您结果。", query="天气预报")  # no sentence shares a term
    assert unmatched["answer"].endswith(SOURCES_PREFIX + "[D6] [D2] [D1]")
    assert unmatched["reasons"] == ["answer:sources_appended"]


def test_the_worked_example_is_a_turn_before_the_docs() -> None:
    seen = Seen()
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="可以免费维修 [D2]。")]), callbacks=[seen])
    GenerateAnswer(llm)({"query": SEED, "docs": DOCS, "labels": ["屏幕"]})
    system, example_q, example_a, data = seen.messages
    assert (example_q.type, example_a.type, data.type) == ("human", "ai", "human")
    assert "[X1]" in example_a.content and "<资料>" in example_q.content
    assert "[D2]" in data.content and "[D2]" not in system.content and "X1" not in data.content


LABELLED: list[Any] = [
    {"doc_id": "S1", "title": "碎屏险", "text": "加购碎屏险 99 元，屏幕碎了免费换。", "labels": ["销售", "延保服务"]},
    {"doc_id": "A1", "title": "屏幕保修", "text": "保修期内非人为损坏的屏幕免费维修。", "labels": ["售后", "屏幕"]},
    {"doc_id": "M1", "title": "换屏价格", "text": "换屏 899 元起。", "labels": ["销售"], "label_source": "voters"},
    {"doc_id": "U1", "title": "门店地址", "text": "门店在一楼。"},
]


def test_off_label_docs_stay_out_of_the_prompt_when_the_labels_are_sure() -> None:
    seen = Seen()
    reply = AIMessage(content="保修期内非人为损坏的屏幕免费维修 [A1]。")
    llm = GenericFakeChatModel(messages=iter([reply]), callbacks=[seen])
    state = {"query": SEED, "docs": LABELLED, "labels": ["售后", "屏幕"], "label_source": "voters", "reasons": []}
    out = GenerateAnswer(llm)(state)  # type: ignore[arg-type]
    assert "[S1]" not in seen.messages[-1].content and "[A1]" in seen.messages[-1].content
    assert out["reasons"] == ["answer:off_label_docs_left_out:1"] and out["citations"] == ["A1"]
    # a machine's labels may be wrong and a doc without labels is not known to be off-label: both stay
    assert [d["doc_id"] for d in on_label(state, LABELLED)] == ["A1", "M1", "U1"]  # type: ignore[arg-type]


def test_the_decisive_sentence_comes_from_a_doc_of_the_querys_topic_first_then_a_cited_one() -> None:
    query = "屏幕碎了免费换吗"
    assert decisive_sentence(query, LABELLED, [])[0] == "S1"  # type: ignore[index]  # most shared terms
    assert decisive_sentence(query, LABELLED, [], ["售后", "投诉"])[0] == "A1"  # type: ignore[index]
    assert decisive_sentence(query, LABELLED, ["S1"], ["售后"])[0] == "A1"  # type: ignore[index]  # cited, off-topic
    both = [LABELLED[1], {**LABELLED[1], "doc_id": "A2", "text": "屏幕维修请到店。"}]
    assert decisive_sentence(query, both, ["A2"], ["售后"]) == ("A2", "屏幕维修请到店。")
    # unsure: the candidates are the topic
    out = answer("屏幕碎了可以免费换 [S1]。", LABELLED, query, labels=[], candidates=["售后", "屏幕"])
    assert out["reasons"][-1] == f"{QUOTED}:negation" and out["answer"].endswith(f"[A1]：{LABELLED[1]['text']}")


def test_all_docs_stay_when_the_labels_are_unsure_or_none_matches() -> None:
    for unsure in ({"label_source": "provisional"}, {"label_source": "voters:coarse_unconfirmed"}, {}):
        state: Any = {"labels": ["售后"], **unsure}
        assert on_label(state, LABELLED) == LABELLED
    confirmed: Any = {"labels": ["售后"], "route": "confirmed", "label_source": "llm+rules"}
    assert on_label(confirmed, LABELLED) != LABELLED
    reviewed: Any = {"labels": ["投诉"], "label_source": "human"}
    assert on_label(reviewed, LABELLED[:2]) == LABELLED[:2]  # none shares one
    unlabelled: Any = {"labels": [], "label_source": "voters"}
    assert on_label(unlabelled, LABELLED) == LABELLED


LABEL = st.sampled_from(["售后", "销售", "屏幕", "电池", "投诉"])
DOC = st.fixed_dictionaries(
    {"doc_id": st.sampled_from(["A", "B", "C"]), "labels": st.lists(LABEL, max_size=3)},
    optional={"label_source": st.sampled_from(["given", "voters"])},
)


@given(st.lists(DOC, max_size=6), st.lists(LABEL, max_size=3), st.sampled_from(["voters", "human", "provisional"]))
def test_on_label_keeps_an_ordered_nonempty_subset_and_drops_only_author_labelled_off_label_docs(
    docs: list[Any], labels: list[str], source: str
) -> None:
    kept = on_label({"labels": labels, "label_source": source}, docs)  # type: ignore[typeddict-item]
    assert bool(kept) == bool(docs) and all(any(k is d for d in docs) for k in kept)
    assert [id(d) for d in kept] == [id(d) for d in docs if any(d is k for k in kept)]
    for doc in docs:
        if not any(doc is k for k in kept):
            assert source != "provisional" and doc.get("label_source", "given") == "given"
            assert doc["labels"] and not set(doc["labels"]) & set(labels)


@given(st.text(alphabet="可以不能非保修免费7天。，[]D12 ", max_size=40))
def test_the_llm_text_always_leads_and_quotes_follow_exactly_when_why_quote_says_so(reply: str) -> None:
    out = answer(reply)
    if out["answer_kind"] != "llm":
        return  # empty reply: the passages fallback
    assert out["answer"].startswith(reply.strip())
    cited = cited_ids(reply, DOCS)
    picks = {decisive_sentence(SEED, DOCS, prefer, ["屏幕"]) for prefer in (cited, [])}
    missed = [(*pick, why_quote(reply.strip(), pick[1], cited)) for pick in picks if pick is not None]
    missed = [m for m in missed if m[2] is not None]
    assert sorted(out["reasons"]) == sorted(f"{QUOTED}:{why}" for _, _, why in missed)
    assert out["answer"].count("资料原文 [") == len(missed)
    for doc_id, sentence, _ in missed:
        assert f"资料原文 [{doc_id}]：{sentence}" in out["answer"] and doc_id in out["citations"]


def test_an_answer_citing_a_doc_that_does_not_decide_the_question_gets_the_deciding_sentence_quoted() -> None:
    query = "屏幕有亮点能换新机吗"
    docs: list[Any] = [
        {"doc_id": "A9", "title": "坏点", "text": "屏幕坏点影响使用的可以维修。", "labels": ["屏幕"]},
        {"doc_id": "N1", "title": "新机亮点", "text": "签收 15 天内屏幕有亮点的，可换新机。", "labels": ["屏幕"]},
    ]
    reply = "屏幕坏点影响使用的，可以到门店维修 [A9]。"  # states what A9 says: no quote of A9
    assert quotes(query, reply, docs, ["A9"], ["屏幕"]) == [("N1", docs[1]["text"], "number")]
    out = answer(reply, docs, query)
    assert out["reasons"] == [f"{QUOTED}:number"] and out["citations"] == ["A9", "N1"]
    assert out["answer"] == reply + "\n\n资料原文 [N1]：签收 15 天内屏幕有亮点的，可换新机。"


def test_substance_ignores_ids_spaces_and_punctuation() -> None:
    assert substance("可以 [D1]，免费。") == substance("可以免费") == 4
