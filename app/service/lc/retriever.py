"""LabelGateRetriever: query → the gate (classify + vote) → label-filtered Chroma retrieval + rerank → Documents.

The graph's own nodes do the work (app.service.lc.gate); no LLM is called and nothing pauses for a review. Each Document
carries its doc id, chunk id, title, its labels, the filter stage that found it, its scores, and the query's decision.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr

from app.core.errors import InputError
from app.service.lc.gate import Gate, checked, probabilities
from graph.state import State


def to_documents(state: State) -> list[Document]:
    """The reranked docs of a state as Documents; the query's gate outcome is repeated in each one's metadata."""
    query = {
        "query_labels": list(state.get("labels", [])),
        "label_source": state.get("label_source", ""),
        "decision": state.get("decision", ""),
        "confidence": state.get("confidence", 0.0),
        "reasons": list(state.get("reasons", [])),
        "filter_used": dict(state.get("filter_used", {})),
        "widened": bool(state.get("widened", False)),
        "query_probabilities": probabilities(state),
    }
    return [
        Document(
            id=doc["chunk_id"],
            page_content=doc["text"],
            metadata={
                "doc_id": doc["doc_id"],
                "chunk_id": doc["chunk_id"],
                "title": doc["title"],
                "labels": list(doc["labels"]),
                "stage": doc["stage"],
                "scores": dict(doc["scores"]),
                **query,
            },
        )
        for doc in state.get("docs", [])
    ]


class LabelGateRetriever(BaseRetriever):
    """`LabelGateRetriever(components=Components.load(settings), k=4)`; `invoke(query, k=2)` overrides k per call.
    k defaults to the settings' top_k."""

    # Any: pydantic cannot build a validator for the Components dataclass's fields; `checked` tests the type
    components: Annotated[Any, AfterValidator(checked)] = Field(exclude=True)
    k: int | None = Field(None, ge=1)
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _gate: Gate = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._gate = Gate(self.components)

    def _k(self, k: Any) -> int:
        k = (self.k or self.components.settings.top_k) if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        return k

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        k = self._k(k)
        state = self._gate.filtered(self._gate.decide(query))
        return to_documents(self._gate.retrieve(state, k))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """The sync path on a worker thread (voters, Chroma and the embedder are blocking CPU work)."""
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=run_manager.get_sync(), k=k)
