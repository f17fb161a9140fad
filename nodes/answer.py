"""answer: a grounded answer citing doc ids; with no LLM (or a failing one) the cited passages, labelled as such."""

from __future__ import annotations

import logging
import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

import prompts
from app.core.llm import message_text
from app.core.ranking import keyword_overlap
from app.core.textutil import terms
from graph.options import NO_OPTIONS, RunOptions
from graph.state import DocRecord, State

log = logging.getLogger(__name__)
NO_DOCS = "抱歉，知识库中没有找到与您的问题相关的资料。已为您记录，可转接人工客服继续处理。"
OUT_OF_SCOPE = (
    "抱歉，这个问题不在本店客服的服务范围内。如需手机售前、售后或投诉方面的帮助，请告诉我；也可以转接人工客服。"
)
PASSAGES_HEADER = "（以下为知识库原文摘录，未经大模型生成）"
SOURCES_PREFIX = "\n\n参考资料："  # the source list appended to an answer that cites nothing inline


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


def sentences(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"(?<=[。！？!?；;\n])", text) if part.strip()]


def decisive_sentence(query: str, docs: list[DocRecord], prefer: list[str]) -> tuple[str, str] | None:
    """(doc id, sentence): the doc sentence sharing the largest share of the query's terms; among equals one of a doc
    the answer cited, then the earlier doc. A small model's citation is not trusted more than that: it may cite an
    off-topic doc. None when no sentence shares a term."""
    wanted = terms(query)
    best, best_key = None, (0.0, False)
    for doc in docs:
        for sentence in sentences(doc["text"]):
            key = (keyword_overlap(wanted, terms(sentence)), doc["doc_id"] in prefer)
            if key[0] > 0 and key > best_key:
                best, best_key = (doc["doc_id"], sentence), key
    return best


def substance(text: str) -> int:
    """Characters of an answer that say something: no [ids], spaces or punctuation."""
    return len(re.sub(r"\[[^\[\]]*\]|[\s，。、；：！？,.;:!?“”\"'（）()]", "", text))


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
        # one worked example turn (prompts/answer_example.md: the user turn, a line ===, the answer): a 1.5B model
        # copies its shape — conclusion first, the condition/price/steps from the doc, [id] after each sentence
        example_user, example_answer = prompts.load("answer_example").split("\n===\n")
        self.example: list[BaseMessage] = [HumanMessage(example_user.strip()), AIMessage(example_answer.strip())]

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        if self.oos_label is not None and state.get("labels") == [self.oos_label]:
            return {
                "answer": OUT_OF_SCOPE,
                "answer_kind": "out_of_scope",
                "citations": [],
                "reasons": ["answer:out_of_scope_offer_human"],
            }
        docs = state.get("docs", [])
        if not docs:
            return {
                "answer": NO_DOCS,
                "answer_kind": "no_docs",
                "citations": [],
                "reasons": ["answer:no_docs_offer_human"],
            }
        passages = {
            "answer": passages_answer(docs),
            "answer_kind": "passages",
            "citations": list(dict.fromkeys(doc["doc_id"] for doc in docs)),
        }
        if self.llm is None or options.llm is False:
            why = "llm_off_for_run" if self.llm is not None else "llm_not_configured"
            return passages | {"reasons": [f"answer:passages_{why}"]}
        system = self.system.format(labels="、".join(state.get("labels", [])) or "未知")
        try:
            messages = [SystemMessage(system), *self.example, HumanMessage(data_message(state))]
            text = message_text(self.llm.invoke(messages)).strip()
        except Exception as exc:  # network, timeout, server error
            log.warning("answer LLM failed: %s", exc)
            return passages | {"reasons": [f"answer:passages_llm_unavailable:{type(exc).__name__}"]}
        if not text:
            return passages | {"reasons": ["answer:passages_llm_empty"]}
        if garbled(text):
            log.warning("answer LLM returned garbage: %r", text[:80])
            return passages | {"reasons": ["answer:passages_llm_invalid_output"]}
        cited = cited_ids(text, docs)
        quote = decisive_sentence(state["query"], docs, cited)
        if quote is not None and substance(text) < substance(quote[1]):
            # shorter than the one doc sentence that decides the question (「可以」): quote that sentence, cited
            doc_id, sentence = quote
            return {
                "answer": f"{text}\n\n资料原文 [{doc_id}]：{sentence}",
                "answer_kind": "llm",
                "citations": list(dict.fromkeys([*cited, doc_id])),
                "reasons": ["answer:decisive_sentence_quoted"],
            }
        if cited:
            return {"answer": text, "answer_kind": "llm", "citations": cited}
        # small local models often drop the [id] markers: name the passages the answer was grounded in
        sources = list(dict.fromkeys(doc["doc_id"] for doc in docs))
        return {
            "answer": text + SOURCES_PREFIX + " ".join(f"[{doc_id}]" for doc_id in sources),
            "answer_kind": "llm",
            "citations": sources,
            "reasons": ["answer:sources_appended"],
        }
