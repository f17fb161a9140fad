"""`labelgate eval answers`: are the answer node's answers worth showing? On a judged set (data/answers.yaml) each
answer must state the question's decisive facts (regexes: covered or not, the price, the steps) and cite one of its
docs inline — an LLM answer, not the passages fallback, and not only through the appended source list.

`--docs graph` runs the real graph (Assistant.ask: gate, retrieval, rerank, answer); `--docs judged` runs the answer
node on the gate's labels with the set's own docs (the cited ones and their hard negatives), which measures the
answer alone, whatever retrieval finds.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.core.components import Components
from app.core.data import DemoData, load_docs
from app.core.errors import DataError
from app.core.fileio import yaml_entries
from app.ops.eval.latency import percentiles
from app.service.lc.gate import Gate
from graph.state import DocRecord, apply_update
from nodes.answer import QUOTED, SOURCES_PREFIX, GenerateAnswer

DocsMode = Literal["graph", "judged"]


@dataclass(frozen=True)
class JudgedQuestion:
    id: str
    query: str
    cite: tuple[str, ...]  # an answer cites at least one of these inline
    facts: tuple[re.Pattern[str], ...]  # every one must match the answer
    distractors: tuple[str, ...] = ()
    note: str = ""


def load_judged(path: Path) -> list[JudgedQuestion]:
    out = []
    for where, entry in yaml_entries(path, "questions", what="a mapping (a question)"):
        lists = {key: entry.get(key, []) for key in ("cite", "facts", "distractors")}
        if not all(isinstance(v, list) and all(isinstance(x, str) and x for x in v) for v in lists.values()):
            raise DataError(f"{where}: cite, facts and distractors must be lists of non-empty strings")
        if not isinstance(entry.get("query"), str) or not entry["query"].strip() or not lists["cite"]:
            raise DataError(f"{where}: each question needs a 'query' and at least one 'cite' doc id")
        try:
            facts = tuple(re.compile(f) for f in lists["facts"])
        except re.error as exc:
            raise DataError(f"{where}: bad fact regex: {exc}") from exc
        qid = str(entry.get("id", where))
        out.append(
            JudgedQuestion(
                qid,
                entry["query"],
                tuple(lists["cite"]),
                facts,
                tuple(lists["distractors"]),
                str(entry.get("note", "")),
            )
        )
    return out


def judge(question: JudgedQuestion, answer: str, kind: str) -> dict[str, Any]:
    """Facts stated anywhere in an LLM answer's own text; inline = cited before the appended source list."""
    text = answer.split(SOURCES_PREFIX)[0] if kind == "llm" else ""
    missing = [fact.pattern for fact in question.facts if not fact.search(text)]
    inline = [doc_id for doc_id in question.cite if f"[{doc_id}]" in text]
    return {
        "llm": kind == "llm",
        "fact_stated": kind == "llm" and not missing,
        "cited_inline": bool(inline),
        "worth_showing": kind == "llm" and not missing and bool(inline),
        "missing_facts": missing,
        "cited_distractor": [doc_id for doc_id in question.distractors if f"[{doc_id}]" in text],
    }


NUMBER = re.compile(r"\d+(?:\.\d+)?|[一二两三四五六七八九十百千]+(?=个?(?:月|天|年|次|小时|分钟|元))")


def unsupported_numbers(answer: str, doc_texts: Sequence[str]) -> list[str]:
    """Numbers (digits, or Chinese numerals before a unit) in an LLM answer's own text that no shown doc contains:
    invented prices or periods, e.g. copied from the prompt's worked example. Doc ids in [brackets] do not count."""
    text = re.sub(r"\[[^\[\]]*\]", "", answer.split(SOURCES_PREFIX)[0])
    return [n for n in dict.fromkeys(NUMBER.findall(text)) if not any(n in doc for doc in doc_texts)]


def _shuffled(question: JudgedQuestion, ids: Sequence[str]) -> list[str]:
    """The cited docs and distractors in a fixed order that does not put the cited ones first."""
    return sorted(ids, key=lambda doc_id: hashlib.sha256(f"{question.id}:{doc_id}".encode()).hexdigest())


def _judged_state(gate: Gate, question: JudgedQuestion, docs: dict[str, DocRecord]) -> dict[str, Any]:
    state: dict[str, Any] = dict(gate.decide(question.query))
    ids = _shuffled(question, [*question.cite, *question.distractors])
    unknown = [doc_id for doc_id in ids if doc_id not in docs]
    if unknown:
        raise DataError(f"question {question.id}: docs {unknown} are not in the KB's docs.jsonl")
    return state | {"docs": [docs[doc_id] for doc_id in ids]}


def run_answer_eval(
    components: Components,
    questions: Sequence[JudgedQuestion],
    *,
    docs: DocsMode = "graph",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every question through the graph or the answer node; `progress` gets each row as it is judged (the local LLM
    takes from seconds to minutes an answer on shared cores)."""
    if components.llm is None:
        from app.core.errors import LLMServerError

        raise LLMServerError("no LLM: set LABELGATE_LLM_BASE_URL or run `labelgate models build` for the local one")
    rows, times = [], []
    if docs == "judged":
        kb = {
            d.id: DocRecord(
                chunk_id=d.id,
                doc_id=d.id,
                title=d.title,
                text=d.text,
                labels=list(d.labels),
                stage="none",  # judged: no filter chose them
                scores={"semantic": 0.0},
            )
            for d in load_docs(DemoData(components.settings.data_dir).docs, components.taxonomy)
        }
        node = GenerateAnswer(components.llm, oos_label=components.taxonomy.oos_label)
        gate = Gate(components)
    else:
        from langgraph.checkpoint.memory import InMemorySaver

        from app.service.api import Assistant

        assistant = Assistant(components, checkpointer=InMemorySaver())
    for question in questions:
        start = time.perf_counter()
        if docs == "judged":
            state = _judged_state(gate, question, kb)
            out = apply_update(state, node(state))  # type: ignore[arg-type]
        else:
            turn = assistant.ask(question.query)
            out = dict(assistant.graph.get_state(assistant._config(turn.thread_id)).values)
        times.append((time.perf_counter() - start) * 1000)
        shown = [d["doc_id"] for d in out.get("docs", [])]
        reasons = out.get("reasons", [])
        row = judge(question, out.get("answer", ""), out.get("answer_kind", ""))
        if row["llm"]:
            row["unsupported_numbers"] = unsupported_numbers(out["answer"], [d["text"] for d in out.get("docs", [])])
        rows.append(
            {
                "id": question.id,
                "query": question.query,
                **row,
                "retrieved_cited_doc": bool(set(shown) & set(question.cite)),
                "docs": shown,
                "fallback_quoted": next((r.removeprefix(QUOTED + ":") for r in reasons if r.startswith(QUOTED)), ""),
                "off_label_left_out": any(r.startswith("answer:off_label_docs_left_out") for r in reasons),
                "answer": out.get("answer", ""),
            }
        )
        if progress is not None:
            progress(rows[-1])
    n = len(rows)

    def share(key: str) -> float:
        return round(sum(bool(r.get(key)) for r in rows) / n, 4) if n else 0.0

    keys = ("worth_showing", "fact_stated", "cited_inline", "llm", "retrieved_cited_doc", "fallback_quoted",
            "unsupported_numbers", "cited_distractor", "off_label_left_out")  # fmt: skip
    return {
        "docs": docs,
        "questions": n,
        **{key: share(key) for key in keys},
        "latency": percentiles(times) if times else {},
        "rows": rows,
    }
