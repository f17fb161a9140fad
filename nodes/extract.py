"""extract: the LLM proposes labels (bound to the taxonomy by a JSON schema enum) and entities.

LLM output is untrusted: parsed, schema-checked, taxonomy-checked. Invalid output gets one retry with the error;
then, like an unreachable or unconfigured LLM, an explicit fallback recorded in `reasons` (→ review).

Few-shot: with an example store the user message carries the k reviewed queries most similar to this one (train
split + feedback people or rules confirmed) with their labels, quoted as data; the system message (instructions and
the label table with descriptions) stays the same for every query, so the LLM server reuses its cached prefix.

Proposal: the node also fuses every opinion on the query — both voters' probabilities, the kNN vote over the nearest
reviewed examples, the LLM's labels — into `proposal` (app/core/proposal.py), the set a reviewer starts from. It
exists without an LLM too. Confirmation (nodes/rules.py) still checks the LLM's own labels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

import prompts
from app.core.fewshot import KNN_K, KNN_TEMPERATURE, knn_vote_shots
from app.core.llm import message_text, parse_json_object
from app.core.proposal import llm_opinion, propose
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

    def nearest(self, query: str) -> tuple[list[Shot], list[str]]:
        """The reviewed examples nearest the query (enough for the prompt and the kNN opinion) and reasons."""
        if self.examples is None:
            return [], []
        try:
            return self.examples.nearest_text(query, max(self.k, KNN_K)), []
        except Exception as exc:  # examples help; an embedder or store failure must not cost the extraction
            log.warning("few-shot examples unavailable: %s", exc)
            return [], [f"extract:fewshot_unavailable:{type(exc).__name__}"]

    def user_message(self, query: str, shots: Sequence[Shot]) -> str:
        """The query, after its k nearest reviewed examples when there are any (most similar last: nearest it)."""
        if self.k <= 0 or not shots:
            return query
        block = examples_block(list(shots[: self.k])[::-1], self.taxonomy)
        return self.user_template.format(examples=block, query=query)

    def fuse(self, state: State, shots: Sequence[Shot], llm_labels: Sequence[str]) -> dict[str, Any]:
        """The path's proposal from the voters' probabilities, the kNN vote and the LLM's labels (app/core/proposal)."""
        opinions: dict[str, Mapping[str, float]] = {
            name: rec["probs"] for name, rec in state.get("votes", {}).items() if rec.get("probs")
        }
        if shots:
            opinions["knn"] = knn_vote_shots(shots[:KNN_K], self.taxonomy, temperature=KNN_TEMPERATURE).scores
        if llm_labels:
            opinions["llm"] = llm_opinion(llm_labels, self.taxonomy)
        proposal = propose(opinions, self.taxonomy)
        why = [f"proposal:{'+'.join(proposal.opinions)}"] if proposal.labels else ["proposal:none"]
        return {"proposal": proposal.labels, "reasons": why}

    def __call__(self, state: State, options: RunOptions = NO_OPTIONS) -> dict[str, Any]:
        shots, notes = self.nearest(state["query"])
        out = self.extract(state["query"], shots, options)
        proposal = self.fuse(state, shots, out["llm_labels"])
        return out | {"proposal": proposal["proposal"], "reasons": [*notes, *out["reasons"], *proposal["reasons"]]}

    def extract(self, query: str, shots: Sequence[Shot], options: RunOptions) -> dict[str, Any]:
        """The LLM's labels and entities, validated; a skipped or failed call is an explicit reason, never a raise."""
        if self.llm is None or options.llm is False:
            return skipped("llm_off_for_run" if self.llm is not None else "llm_not_configured")
        messages: list[BaseMessage] = [SystemMessage(self.system), HumanMessage(self.user_message(query, shots))]
        for attempt in range(2):
            try:
                reply = self.llm.invoke(messages)
            except Exception as exc:  # network, timeout, server error: all mean "LLM unavailable"
                log.warning("extractor LLM failed: %s", exc)
                return skipped(f"llm_unavailable:{type(exc).__name__}")
            text = message_text(reply)
            try:
                known, unknown, entities = validate_extraction(text, self.taxonomy)
            except ValueError as exc:
                messages += [AIMessage(text), HumanMessage(f"上次输出无效（{exc}）。请只输出符合格式的 JSON。")]
                continue
            extra = [f"llm_dropped_unknown:{len(unknown)}"] if unknown else []
            retry = ["llm_retried"] if attempt else []
            return {"llm_labels": self.taxonomy.expand(known), "entities": entities, "reasons": [*retry, *extra]}
        return skipped("llm_invalid_output")


def skipped(why: str) -> dict[str, Any]:
    """No LLM labels, and why: recorded, never raised (→ review)."""
    return {"llm_labels": [], "entities": {}, "reasons": [f"extract_skipped:{why}"]}
