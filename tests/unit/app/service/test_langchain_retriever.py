"""LabelGateRetriever over the real nodes (voter doubles, a tiny encoder, ephemeral Chroma): LangChain's standard
retriever suite (langchain-tests), then the label metadata every Document carries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from app.core.errors import InputError
from app.service.lc import LabelGateRetriever

SEED = "我的手机屏幕裂了，保修可以换吗？"


@pytest.mark.asyncio  # the suite's one async test; pytest-asyncio warns about the mark on the sync ones
@pytest.mark.filterwarnings("ignore:.*marked with '@pytest.mark.asyncio' but it is not an async function")
class TestLabelGateRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _components(self, components: Any) -> None:
        self.components = components

    @property
    def retriever_constructor(self) -> type[LabelGateRetriever]:
        return LabelGateRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"components": self.components, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return SEED


class Refusing:
    """An LLM double that fails the test if the retriever ever calls it."""

    def invoke(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the retriever must not call the LLM")


def test_documents_carry_doc_labels_stage_scores_and_the_query_decision(components) -> None:  # type: ignore[no-untyped-def]
    from app.service.api import Assistant

    docs = LabelGateRetriever(components=components).invoke(SEED)
    graph_docs = Assistant(components).ask(SEED).docs  # the graph with the same nodes and top_k
    assert [(d.metadata["chunk_id"], d.metadata["stage"], d.metadata["scores"]) for d in docs] == [
        (d["chunk_id"], d["stage"], d["scores"]) for d in graph_docs
    ]
    assert len(docs) == components.settings.top_k
    fused = [d.metadata["scores"]["fused"] for d in docs]
    assert fused == sorted(fused, reverse=True)
    for doc in docs:
        meta = doc.metadata
        assert isinstance(doc, Document) and doc.id == meta["chunk_id"] and doc.page_content
        assert meta["doc_id"] == meta["chunk_id"].split("#")[0] and meta["title"] == f"title {meta['doc_id']}"
        if meta["stage"] == "fine":  # found under the query's fine filter: carries one of its labels
            assert {"屏幕", "保修政策"} & set(meta["labels"])
        assert {"semantic", "label", "keyword", "fused"} <= set(meta["scores"])
        assert meta["decision"] == "auto" and meta["label_source"] == "voters"
        assert {"售后", "屏幕", "保修政策"} <= set(meta["query_labels"])
        assert meta["query_probabilities"]["屏幕"] > 0.9 > meta["query_probabilities"]["电池"]
        assert meta["filter_used"]["stage"] == "fine" and meta["widened"] is False
    assert [d.metadata["stage"] for d in docs].count("fine") >= 2


def test_an_escalated_query_is_filtered_by_coarse_candidates_without_llm_or_review(components) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    quiet = dataclasses.replace(components, llm=Refusing())
    docs = LabelGateRetriever(components=quiet, k=3).invoke("修好的进度怎么样了")  # only voter B accepts a label
    assert len(docs) == 3
    meta = docs[0].metadata
    assert meta["decision"] == "escalate" and meta["label_source"] == "voters:coarse_unconfirmed"
    assert meta["query_labels"] == ["售后"] and "filter:coarse_unconfirmed" in meta["reasons"]
    assert components.feedback.rows() == []  # nothing confirmed, nothing queued for a person


def test_nothing_accepted_retrieves_unfiltered(components) -> None:  # type: ignore[no-untyped-def]
    docs = LabelGateRetriever(components=components, k=2).invoke("随便聊聊吧")
    assert len(docs) == 2
    assert {d.metadata["stage"] for d in docs} == {"none"}
    assert docs[0].metadata["query_labels"] == [] and "filter:none_unconfirmed" in docs[0].metadata["reasons"]


def test_async_returns_what_sync_returns(components) -> None:  # type: ignore[no-untyped-def]
    retriever = LabelGateRetriever(components=components)
    sync = retriever.invoke(SEED, k=2)
    both = asyncio.run(_abatch(retriever))
    assert both == [sync, sync]


async def _abatch(retriever: LabelGateRetriever) -> list[list[Document]]:
    return list(await asyncio.gather(retriever.ainvoke(SEED, k=2), retriever.ainvoke(SEED, k=2)))


def test_bad_k_and_bad_components_are_refused(components) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    retriever = LabelGateRetriever(components=components)
    for k in (0, -1, "2", True):
        with pytest.raises(InputError, match="k must be a positive integer"):
            retriever.invoke(SEED, k=k)
    with pytest.raises(ValidationError):
        LabelGateRetriever(components=components, k=0)
    with pytest.raises(ValidationError, match=r"Components\.load"):
        LabelGateRetriever(components={"settings": None})
