"""The LLM's opinion of a doc's labels, at index time: bound to the taxonomy (json_schema enum of its leaves), checked
like any LLM output, and cached by content hash — the same doc, taxonomy, prompt and model are never asked twice, so
re-indexing costs nothing. Asked only about the docs the voters are unsure of (app/core/indexing.py); its answer
joins the voters' and the rules' in app/core/doclabels.py `label_doc`, where agreement decides.

An unreachable LLM or an answer that is not valid twice gives None: the doc keeps the voters' labels (and goes to
review when they are unsure), never an error at index time."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

import prompts
from app.core.llm import message_text, parse_json_object
from app.core.taxonomy import Taxonomy, label_table

log = logging.getLogger(__name__)
MAX_DOC_CHARS = 1500  # what the LLM reads of a doc: its title and beginning


def doc_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """response_format: one to three of the taxonomy's leaves, nothing else."""
    labels = {"type": "array", "items": {"type": "string", "enum": taxonomy.leaf_ids}, "minItems": 1, "maxItems": 3}
    schema = {"type": "object", "additionalProperties": False, "required": ["labels"], "properties": {"labels": labels}}
    return {"type": "json_schema", "json_schema": {"name": "doc_labels", "strict": True, "schema": schema}}


def parse_doc_labels(raw: str, taxonomy: Taxonomy) -> list[str]:
    """The reply's known leaves (unknown ones dropped); ValueError when the reply is not the expected shape or names
    no known leaf."""
    labels = parse_json_object(raw).get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("'labels' must be a list of strings")
    known, _ = taxonomy.split_known(x.strip() for x in labels)
    leaves = taxonomy.fine_only(known)
    if not leaves:
        raise ValueError("no label of the taxonomy's leaves")
    return leaves


class LabelCache:
    """content hash → labels, in SQLite (one file beside the KB; safe across threads and re-runs)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS doc_labels (key TEXT PRIMARY KEY, labels TEXT NOT NULL)")

    def get(self, key: str) -> list[str] | None:
        with self._lock:
            row = self._db.execute("SELECT labels FROM doc_labels WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, labels: list[str]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO doc_labels VALUES (?, ?)", (key, json.dumps(labels)))

    def close(self) -> None:
        self._db.close()


class LlmDocLabeler:
    """`labeler(title, text)` → the LLM's leaves for the doc, or None when it gave none (unreachable, invalid twice)."""

    def __init__(self, llm: BaseChatModel, taxonomy: Taxonomy, cache: LabelCache, *, model: str = "") -> None:
        self.llm = llm.bind(response_format=doc_schema(taxonomy))
        self.taxonomy, self.cache = taxonomy, cache
        self.system = prompts.load("doclabel").format(labels=label_table(taxonomy))
        self.model = model or str(getattr(llm, "model_name", "") or type(llm).__name__)
        self.asked = self.cached = 0  # LLM calls made, answers read from the cache

    def key(self, user: str) -> str:
        return hashlib.sha256("\0".join([self.model, self.system, user]).encode()).hexdigest()

    def __call__(self, title: str, text: str) -> list[str] | None:
        user = f"{title}\n{text}".strip()[:MAX_DOC_CHARS]
        key = self.key(user)
        if (hit := self.cache.get(key)) is not None:
            self.cached += 1
            return [x for x in hit if x in self.taxonomy] or None
        messages: list[BaseMessage] = [SystemMessage(self.system), HumanMessage(user)]
        for _ in range(2):
            self.asked += 1
            try:
                reply = message_text(self.llm.invoke(messages))
            except Exception as exc:  # unreachable, timeout, server error: the voters' labels stand
                log.warning("doc labelling LLM failed: %s", exc)
                return None
            try:
                leaves = parse_doc_labels(reply, self.taxonomy)
            except ValueError as exc:
                messages += [AIMessage(reply), HumanMessage(f"上次输出无效（{exc}）。请只输出符合格式的 JSON。")]
                continue
            self.cache.put(key, leaves)
            return leaves
        return None
