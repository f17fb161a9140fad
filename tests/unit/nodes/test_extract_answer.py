"""extract and answer with langchain_core fake chat models: parsing, retry, taxonomy binding, fallbacks."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from nodes.answer import NO_DOCS, OUT_OF_SCOPE, PASSAGES_HEADER, Answer
from nodes.extract import Extract, response_format


class FailingChat(GenericFakeChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("llm timed out")


def fake(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


STATE = {"query": "屏幕碎了，订单 SF123 能保修吗", "reasons": ["x"]}


def test_schema_binds_labels_to_taxonomy(taxonomy) -> None:  # type: ignore[no-untyped-def]
    schema = response_format(taxonomy)["json_schema"]["schema"]
    assert schema["properties"]["labels"]["items"]["enum"] == taxonomy.ids


def test_extract_valid_reply(taxonomy) -> None:  # type: ignore[no-untyped-def]
    reply = '{"labels": ["屏幕", "保修政策"], "entities": [{"type": "order_id", "value": "SF123"}]}'
    out = Extract(fake(reply), taxonomy)(STATE)
    assert out["llm_labels"] == ["售后", "屏幕", "保修政策"]
    assert out["entities"] == {"order_id": "SF123"}
    assert out["reasons"] == ["x"]


def test_extract_drops_labels_outside_taxonomy_and_records_it(taxonomy) -> None:  # type: ignore[no-untyped-def]
    out = Extract(fake('{"labels": ["ADMIN", "屏幕"], "entities": []}'), taxonomy)(STATE)
    assert out["llm_labels"] == ["售后", "屏幕"]
    assert "llm_dropped_unknown:1" in out["reasons"]


def test_extract_retries_once_then_falls_back(taxonomy) -> None:  # type: ignore[no-untyped-def]
    out = Extract(fake("not json", '```json\n{"labels": ["电池"]}\n```'), taxonomy)(STATE)
    assert out["llm_labels"] == ["售后", "电池"] and "llm_retried" in out["reasons"]
    out = Extract(fake("nope", '{"labels": "电池"}'), taxonomy)(STATE)
    assert out["llm_labels"] == [] and out["reasons"][-1] == "extract_skipped:llm_invalid_output"


def test_extract_without_or_with_broken_llm(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert Extract(None, taxonomy)(STATE)["reasons"][-1] == "extract_skipped:llm_not_configured"
    out = Extract(FailingChat(messages=iter([])), taxonomy)(STATE)
    assert out["reasons"][-1] == "extract_skipped:llm_unavailable:TimeoutError"


DOCS = [
    {
        "id": "D1#0",
        "doc_id": "D1",
        "title": "保修",
        "text": "屏幕损坏属于保修范围。",
        "labels": ["屏幕"],
        "stage": "fine",
        "scores": {"semantic": 0.9},
    },
    {
        "id": "D2#0",
        "doc_id": "D2",
        "title": "保修",
        "text": "保修期内免费维修。",
        "labels": ["屏幕"],
        "stage": "fine",
        "scores": {"semantic": 0.8},
    },
]


def test_answer_paths() -> None:
    no_docs = Answer(None)({"query": "q", "docs": []})
    assert no_docs["answer"] == NO_DOCS and no_docs["answer_kind"] == "no_docs"
    passages = Answer(None)({"query": "q", "docs": DOCS})
    assert passages["answer"].startswith(PASSAGES_HEADER) and passages["citations"] == ["D1", "D2"]
    llm = Answer(fake("可以免费更换一次 [D1]，另见 [D9]。"))({"query": "q", "docs": DOCS, "labels": ["屏幕"]})
    assert llm["answer_kind"] == "llm" and llm["citations"] == ["D1"]  # D9 was never retrieved: not a citation
    uncited = Answer(fake("可以免费更换。"))({"query": "q", "docs": DOCS, "reasons": []})
    assert uncited["answer"] == "可以免费更换。\n\n参考资料：[D1] [D2]" and uncited["citations"] == ["D1", "D2"]
    assert uncited["reasons"] == ["answer:sources_appended"]
    broken = Answer(FailingChat(messages=iter([])))({"query": "q", "docs": DOCS, "reasons": []})
    assert broken["answer_kind"] == "passages"
    assert broken["reasons"] == ["answer:passages_llm_unavailable:TimeoutError"]


def test_out_of_scope_is_said_not_answered_from_docs() -> None:
    out = Answer(fake("不该被调用"), oos_label="其他")(
        {"query": "天气", "labels": ["其他"], "docs": DOCS, "reasons": []}
    )
    assert out["answer"] == OUT_OF_SCOPE and out["citations"] == [] and out["answer_kind"] == "out_of_scope"
