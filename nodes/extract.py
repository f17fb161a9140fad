"""extract: the LLM proposes labels (bound to the taxonomy by a JSON schema enum) and entities.

LLM output is untrusted: parsed, schema-checked, taxonomy-checked. Invalid output gets one retry with the error;
then, like an unreachable or unconfigured LLM, an explicit fallback recorded in `reasons` (→ review).

Few-shot: with an example store the user message carries the k reviewed queries most similar to this one (train
split + feedback people or rules confirmed) with their labels, quoted as data; the system message (instructions and
the label table with descriptions) stays the same for every query, so the LLM server reuses its cached prefix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

import prompts
from app.core.llm import message_text, parse_json_object
from app.core.taxonomy import Taxonomy, label_table
from graph.options import NO_OPTIONS, RunOptions
from graph.state import State

if TYPE_CHECKING:
    from app.core.fewshot import ExampleStore, Shot

log = logging.getLogger(__name__)
ENTITY_TYPES = ("product", "order_id", "date", "price", "store")


def response_format(taxonomy: Taxonomy) -> dict[str, Any]:
    entity = {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "value"],
        "properties": {"type": {"type": "string", "enum": list(ENTITY_TYPES)}, "value": {"type": "string"}},
    }
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["labels", "entities"],
        "properties": {
            "labels": {
                "type": "array",
                "items": {"type": "string", "enum": taxonomy.ids},
                "minItems": 1,
                "maxItems": 3,
            },
            "entities": {"type": "array", "items": entity, "maxItems": 5},
        },
    }
    return {"type": "json_schema", "json_schema": {"name": "labels", "strict": True, "schema": schema}}


def validate_extraction(raw: str, taxonomy: Taxonomy) -> tuple[list[str], list[str], dict[str, str]]:
    """(known labels, dropped unknown labels, entities); ValueError when the reply is not the expected shape."""
    data = parse_json_object(raw)
    labels = data.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("'labels' must be a list of strings")
    known, unknown = taxonomy.split_known(x.strip() for x in labels)
    entities: dict[str, str] = {}
    for item in data.get("entities") or []:
        if isinstance(item, dict) and item.get("type") in ENTITY_TYPES and isinstance(item.get("value"), str):
            entities.setdefault(item["type"], item["value"][:100])
    return known, unknown, entities


def examples_block(shots: Sequence[Shot], taxonomy: Taxonomy) -> str:
    """Reviewed examples as quoted data, one a line: "query" → fine labels."""
    lines = []
    for number, shot in enumerate(shots, 1):
        labels = "、".join(taxonomy.fine_only(shot.labels))
        lines.append(f"{number}. {json.dumps(shot.text, ensure_ascii=False)} → {labels}")
    return "\n".join(lines)


class Extract:
    def __init__(
        self,
        llm: BaseChatModel | None,
        taxonomy: Taxonomy,
        examples: ExampleStore | None = None,
        *,
        k: int = 8,
    ) -> None:
        self.llm = llm.bind(response_format=response_format(taxonomy)) if llm is not None else None
        self.taxonomy = taxonomy
        self.system = prompts.load("extract").format(labels=label_table(taxonomy))
        self.examples, self.k = examples, k
        self.user_template = prompts.load("extract_examples")

    def user_message(self, query: str) -> tuple[str, list[str]]:
        """The user message (the query, with its nearest reviewed examples when there are any) and reasons."""
        if self.examples is None or self.k <= 0:
            return query, []
        try:
            shots = self.examples.nearest_text(query, self.k)
        except Exception as exc:  # examples help; an embedder or store failure must not cost the extraction
            log.warning("few-shot examples unavailable: %s", exc)
            return query, [f"extract:fewshot_unavailable:{type(exc).__name__}"]
        if not shots:
            return query, []
        shots = shots[::-1]  # most similar last: nearest the query
        return self.user_template.format(examples=examples_block(shots, self.taxonomy), query=query), []

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        if self.llm is None or options.llm is False:
            why = "llm_off_for_run" if self.llm is not None else "llm_not_configured"
            return {"llm_labels": [], "entities": {}, "reasons": [f"extract_skipped:{why}"]}
        user, notes = self.user_message(state["query"])
        messages: list[BaseMessage] = [SystemMessage(self.system), HumanMessage(user)]
        for attempt in range(2):
            try:
                reply = self.llm.invoke(messages)
            except Exception as exc:  # network, timeout, server error: all mean "LLM unavailable"
                log.warning("extractor LLM failed: %s", exc)
                return {
                    "llm_labels": [],
                    "entities": {},
                    "reasons": [*notes, f"extract_skipped:llm_unavailable:{type(exc).__name__}"],
                }
            text = message_text(reply)
            try:
                known, unknown, entities = validate_extraction(text, self.taxonomy)
            except ValueError as exc:
                messages += [AIMessage(text), HumanMessage(f"上次输出无效（{exc}）。请只输出符合格式的 JSON。")]
                continue
            extra = [f"llm_dropped_unknown:{len(unknown)}"] if unknown else []
            retry = ["llm_retried"] if attempt else []
            return {
                "llm_labels": self.taxonomy.expand(known),
                "entities": entities,
                "reasons": [*notes, *retry, *extra],
            }
        reasons = [*notes, "extract_skipped:llm_invalid_output"]
        return {"llm_labels": [], "entities": {}, "reasons": reasons}
