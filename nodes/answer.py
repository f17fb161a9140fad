"""answer: a grounded answer citing doc ids; with no LLM (or a failing one) the cited passages, labelled as such."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
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
QUOTED = "answer:decisive_sentence_quoted"  # the reason, then `:<why>` (why_quote)
SURE_SOURCES = ("voters", "human")  # label sources of sure labels (a confirmed route is sure too)
NUMBER = re.compile(r"\d+(?:\.\d+)?|[一二两三四五六七八九十百千]+(?=个?(?:月|天|年|次|小时|分钟|元))")
NEGATION = re.compile(r"不|无法|非|未|没有|无需|禁止")


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
    """Whole sentences (to 。！？ or a line end): a clause cut at ；/， would lose the period or condition it carries
    (「…失灵的，7 天内回原门店可免费重新校准。」)."""
    return [part.strip() for part in re.split(r"(?<=[。！？!?\n])", text) if part.strip()]


def labels_sure(state: State) -> bool:
    """The query's labels are sure: the voters' auto decision, a confirmation (the LLM agreed by a rule or a voter) or
    a person's review; not a provisional or unconfirmed coarse filter."""
    if not state.get("labels"):
        return False
    return state.get("label_source") in SURE_SOURCES or state.get("route") == "confirmed"


def on_label(state: State, docs: list[DocRecord]) -> list[DocRecord]:
    """The docs the LLM is shown: when the query's labels are sure, a doc its author labelled with none of them (a
    marketing page next to a warranty question) stays out of the prompt. Docs labelled by a machine (their labels may
    be wrong) or not at all stay in; so do all docs when the labels are unsure or no doc shares one."""
    if not labels_sure(state):
        return docs
    wanted = set(state.get("labels", []))
    kept = [
        doc
        for doc in docs
        if doc.get("label_source", "given") != "given" or not doc.get("labels") or wanted & set(doc["labels"])
    ]
    return kept or docs


def decisive_sentence(
    query: str, docs: list[DocRecord], prefer: list[str], topic: Collection[str] = ()
) -> tuple[str, str] | None:
    """(doc id, sentence): the doc sentence that decides the question. Among sentences sharing a term with the query:
    one of a doc of the query's `topic` (its labels, or its candidate labels when unsure) first, as a marketing page
    that echoes the question's words must not decide it; then one of a doc the answer cited (the sentence the answer
    is checked against); then the largest share of the query's terms; then the earlier doc. None when no sentence
    shares a term."""
    wanted, topic = terms(query), set(topic)
    best, best_key = None, (False, False, 0.0)
    for doc in docs:
        on_topic, cited = bool(topic & set(doc.get("labels", []))), doc["doc_id"] in prefer
        for sentence in sentences(doc["text"]):
            key = (on_topic, cited, keyword_overlap(wanted, terms(sentence)))
            if key[2] > 0 and key > best_key:
                best, best_key = (doc["doc_id"], sentence), key
    return best


def substance(text: str) -> int:
    """Characters of an answer that say something: no [ids], spaces or punctuation."""
    return len(re.sub(r"\[[^\[\]]*\]|[\s，。、；：！？,.;:!?“”\"'（）()]", "", text))


def _own_text(text: str) -> str:
    return re.sub(r"\[[^\[\]]*\]", "", text)


def numbers(text: str) -> list[str]:
    """Numbers a sentence decides with: digits (prices, periods, shares) and Chinese numerals before a unit."""
    return list(dict.fromkeys(NUMBER.findall(_own_text(text))))


def why_quote(answer: str, sentence: str, cited: list[str]) -> str | None:
    """Why the decisive sentence must be quoted under the LLM's answer, or None when the answer can stand alone:
    `shorter` than that sentence (「可以」), a `number` of it missing (「7 天」, a price), its `negation` missing (the
    sentence says 不/无法/非… and the answer says none of them: a condition or a refusal dropped), or `uncited` (no
    [id] inline: the reader cannot tell which doc the answer rests on). `shorter` means under half the sentence: a
    whole sentence often has two clauses, and an answer may state the one that matters in fewer words."""
    own = _own_text(answer)
    if 2 * substance(answer) < substance(sentence):
        return "shorter"
    if any(n not in own for n in numbers(sentence)):
        return "number"
    if NEGATION.search(sentence) and not NEGATION.search(own):
        return "negation"
    if not cited:
        return "uncited"
    return None


def _fenced(text: str) -> str:
    """Text that cannot open or close the <资料>/<问题> blocks it is placed in."""
    for tag in ("资料", "问题"):
        text = text.replace(f"<{tag}", f"‹{tag}").replace(f"</{tag}", f"‹/{tag}")
    return text


def data_message(state: State, docs: list[DocRecord] | None = None) -> str:
    """The user turn: the docs (default: the state's) and the question as fenced data. Docs never go into the system
    message, so text in a doc (or the query) is read as content, not as instructions."""
    shown = state["docs"] if docs is None else docs
    context = "\n".join(f"[{doc['doc_id']}] {_fenced(doc['title'])}：{_fenced(doc['text'])}" for doc in shown)
    return f"<资料>\n{context}\n</资料>\n\n<问题>\n{_fenced(state['query'])}\n</问题>"


def quotes(
    query: str, answer: str, docs: list[DocRecord], cited: list[str], topic: Collection[str]
) -> list[tuple[str, str, str]]:
    """(doc id, sentence, why) to quote under an answer: the decisive sentence among the docs it cited, and the one
    among all docs (they differ when the answer cites a doc that does not decide the question, e.g. advice next to
    the policy); each only when `why_quote` finds the answer misses it."""
    picks = [decisive_sentence(query, docs, cited, topic), decisive_sentence(query, docs, [], topic)]
    out = []
    for pick in dict.fromkeys(pick for pick in picks if pick is not None):
        why = why_quote(answer, pick[1], cited)
        if why is not None:
            out.append((*pick, why))
    return out


class GenerateAnswer:
    """The answer node: the answer text from the reranked docs (an `Answer` is what a caller gets for a whole turn,
    app/service/api.py)."""

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
        shown = on_label(state, docs)
        left_out = len(docs) - len(shown)
        reasons = [f"answer:off_label_docs_left_out:{left_out}"] if left_out else []
        docs = shown
        system = self.system.format(labels="、".join(state.get("labels", [])) or "未知")
        try:
            messages = [SystemMessage(system), *self.example, HumanMessage(data_message(state, docs))]
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
        topic = state.get("labels") or state.get("candidates", [])
        missed = quotes(state["query"], text, docs, cited, topic)
        if missed:
            # the answer misses what a doc sentence that decides the question says: quote it, cited
            return {
                "answer": text + "".join(f"\n\n资料原文 [{doc_id}]：{sentence}" for doc_id, sentence, _ in missed),
                "answer_kind": "llm",
                "citations": list(dict.fromkeys([*cited, *(doc_id for doc_id, _, _ in missed)])),
                "reasons": [*reasons, *(f"{QUOTED}:{why}" for _, _, why in missed)],
            }
        if cited:
            return {"answer": text, "answer_kind": "llm", "citations": cited, "reasons": reasons}
        # small local models often drop the [id] markers: name the passages the answer was grounded in
        sources = list(dict.fromkeys(doc["doc_id"] for doc in docs))
        return {
            "answer": text + SOURCES_PREFIX + " ".join(f"[{doc_id}]" for doc_id in sources),
            "answer_kind": "llm",
            "citations": sources,
            "reasons": [*reasons, "answer:sources_appended"],
        }
