"""answer: a grounded answer citing doc ids; with no LLM (or a failing one) the cited passages, labelled as such."""

from __future__ import annotations

import logging
import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

import prompts
from app.llm import message_text
from graph.state import DocRecord, State, add_reasons

log = logging.getLogger(__name__)
NO_DOCS = "抱歉，知识库中没有找到与您的问题相关的资料。已为您记录，可转接人工客服继续处理。"
OUT_OF_SCOPE = (
    "抱歉，这个问题不在本店客服的服务范围内。如需手机售前、售后或投诉方面的帮助，请告诉我；也可以转接人工客服。"
)
PASSAGES_HEADER = "（以下为知识库原文摘录，未经大模型生成）"


def passages_answer(docs: list[DocRecord]) -> str:
    return "\n".join([PASSAGES_HEADER, *(f"[{doc['doc_id']}] {doc['text']}" for doc in docs)])


def cited_ids(text: str, docs: list[DocRecord]) -> list[str]:
    """Doc ids the answer cites in [brackets] that really were among the docs, in first-cited order."""
    known = {doc["doc_id"] for doc in docs}
    return list(dict.fromkeys(x for x in re.findall(r"\[([^\[\]\s]{1,40})\]", text) if x in known))


def garbled(text: str) -> bool:
    """A reply no customer should see: control characters, undecodable bytes (U+FFFD), or JSON/HTML, not prose."""
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]", text):
        return True
    head = text.lstrip()[:15].lower()
    return head.startswith(("{", "[{", "<html", "<!doctype", "<?xml"))


def _fenced(text: str) -> str:
    """Text that cannot open or close the <资料>/<问题> blocks it is placed in."""
    for tag in ("资料", "问题"):
        text = text.replace(f"<{tag}", f"‹{tag}").replace(f"</{tag}", f"‹/{tag}")
    return text


def data_message(state: State) -> str:
    """The user turn: retrieved docs and the question as fenced data. Docs never go into the system message, so text
    in a doc (or the query) is read as content, not as instructions."""
    context = "\n".join(f"[{doc['doc_id']}] {_fenced(doc['title'])}：{_fenced(doc['text'])}" for doc in state["docs"])
    return f"<资料>\n{context}\n</资料>\n\n<问题>\n{_fenced(state['query'])}\n</问题>"


class Answer:
    def __init__(self, llm: BaseChatModel | None, *, oos_label: str | None = None) -> None:
        self.llm = llm
        self.oos_label = oos_label
        self.system = prompts.load("answer")

    def __call__(self, state: State) -> dict[str, Any]:
        if self.oos_label is not None and state.get("labels") == [self.oos_label]:
            return {
                "answer": OUT_OF_SCOPE,
                "answer_kind": "out_of_scope",
                "citations": [],
                "reasons": add_reasons(state, "answer:out_of_scope_offer_human"),
            }
        docs = state.get("docs", [])
        if not docs:
            return {
                "answer": NO_DOCS,
                "answer_kind": "no_docs",
                "citations": [],
                "reasons": add_reasons(state, "answer:no_docs_offer_human"),
            }
        passages = {
            "answer": passages_answer(docs),
            "answer_kind": "passages",
            "citations": list(dict.fromkeys(doc["doc_id"] for doc in docs)),
        }
        if self.llm is None:
            return passages | {"reasons": add_reasons(state, "answer:passages_llm_not_configured")}
        system = self.system.format(labels="、".join(state.get("labels", [])) or "未知")
        try:
            text = message_text(self.llm.invoke([SystemMessage(system), HumanMessage(data_message(state))])).strip()
        except Exception as exc:  # network, timeout, server error
            log.warning("answer LLM failed: %s", exc)
            return passages | {"reasons": add_reasons(state, f"answer:passages_llm_unavailable:{type(exc).__name__}")}
        if not text:
            return passages | {"reasons": add_reasons(state, "answer:passages_llm_empty")}
        if garbled(text):
            log.warning("answer LLM returned garbage: %r", text[:80])
            return passages | {"reasons": add_reasons(state, "answer:passages_llm_invalid_output")}
        cited = cited_ids(text, docs)
        if cited:
            return {"answer": text, "answer_kind": "llm", "citations": cited}
        # small local models often drop the [id] markers: name the passages the answer was grounded in
        sources = list(dict.fromkeys(doc["doc_id"] for doc in docs))
        return {
            "answer": text + "\n\n参考资料：" + " ".join(f"[{doc_id}]" for doc_id in sources),
            "answer_kind": "llm",
            "citations": sources,
            "reasons": add_reasons(state, "answer:sources_appended"),
        }
