"""Knowledge base: chunking, idempotent sync, voter labelling with aggregation, label partitions in Chroma."""

from __future__ import annotations

import pytest

from app.data import Doc
from app.kb import KnowledgeBase, chunk_text
from app.ranking import partitions_matching
from app.voters.encoders import HFEncoder


def test_chunk_text_packs_sentences_and_cuts_long_ones() -> None:
    text = "第一句。第二句！第三句？" + "长" * 25
    chunks = chunk_text(text, max_chars=10)
    assert all(len(c) <= 10 for c in chunks)
    assert "".join(chunks) == text
    assert chunk_text("短句。", 100) == ["短句。"]
    assert chunk_text("   ", 100) == []


def test_index_is_idempotent_and_syncs_removals(chroma_client, collection_name, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    docs = [Doc("A", "屏幕保修。电池更换。", ("售后", "屏幕")), Doc("B", "以旧换新活动。", ("销售", "以旧换新"))]
    first = kb.index(docs, taxonomy, chunk_chars=7)
    assert first["chunks"] == 3 and first["upserted"] == 3
    assert kb.index(docs, taxonomy, chunk_chars=7)["upserted"] == 0
    changed = kb.index([docs[0], Doc("B", "以旧换新。", ("销售", "以旧换新"))], taxonomy, chunk_chars=7)
    assert changed["upserted"] == 1 and changed["unchanged"] == 2
    removed = kb.index([docs[0]], taxonomy, chunk_chars=7)
    assert removed["deleted"] == 1 and kb.count() == 2


def test_voter_labels_aggregate_to_every_chunk(chroma_client, collection_name, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))

    def labeler(chunks):  # type: ignore[no-untyped-def]
        return [["电池"] if "电池" in c else ["活动优惠"] for c in chunks]

    kb.index([Doc("M", "电池换新。双十一活动。", ())], taxonomy, chunk_chars=7, labeler=labeler)
    got = kb.collection.get(include=["metadatas"])
    for meta in got["metadatas"]:
        assert meta["labels"] == ["售后", "销售", "电池", "活动优惠"] and meta["label_source"] == "voters"


def test_multi_label_doc_found_from_either_label(chroma_client, collection_name, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    kb.index(
        [
            Doc("X", "电池换新优惠活动。", ("售后", "电池", "销售", "活动优惠")),
            Doc("Y", "屏幕维修。", ("售后", "屏幕")),
        ],
        taxonomy,
        chunk_chars=100,
    )
    vector = kb.embed_query("电池")

    def found(*labels: str) -> set[str]:
        return {h.doc_id for h in kb.search(vector, partitions=partitions_matching(labels, taxonomy), n=5)}

    for label in ("电池", "活动优惠", "销售"):
        assert found(label) == {"X"}
    assert found("屏幕", "电池") == {"X", "Y"} and found("售后") == {"X", "Y"}
    assert found("虚假宣传") == set() and kb.search(vector, partitions=(), n=5) == []
    assert {h.doc_id for h in kb.search(vector, partitions=None, n=5)} == {"X", "Y"}


def test_partition_search_equals_the_metadata_filter(kb, taxonomy) -> None:  # type: ignore[no-untyped-def]
    """Same chunks, same order, same scores as Chroma's own `where labels $contains` filter on the main collection."""
    vector = kb.embed_query("屏幕坏了能保修吗")
    for labels in (["屏幕"], ["售后"], ["活动优惠", "电池"], ["销售"], ["其他"], ["投诉"]):
        where = (
            {"$or": [{"labels": {"$contains": x}} for x in labels]}
            if len(labels) > 1
            else {"labels": {"$contains": labels[0]}}
        )
        direct = kb.collection.query(
            query_embeddings=[vector.tolist()], n_results=4, where=where, include=["distances"]
        )
        got = kb.search(vector, partitions=partitions_matching(labels, taxonomy), n=4)
        assert [h.id for h in got] == direct["ids"][0]
        assert [h.similarity for h in got] == pytest.approx([1 - d for d in direct["distances"][0]], abs=1e-5)


def test_relabelled_doc_leaves_its_old_partitions(chroma_client, collection_name, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    kb.index([Doc("X", "电池换新。", ("售后", "电池"))], taxonomy, chunk_chars=100)
    vector = kb.embed_query("电池")
    kb.index([Doc("X", "电池换新。", ("销售", "活动优惠"))], taxonomy, chunk_chars=100)
    assert kb.search(vector, partitions=partitions_matching(["电池"], taxonomy), n=5) == []
    assert [h.doc_id for h in kb.search(vector, partitions=partitions_matching(["销售"], taxonomy), n=5)] == ["X"]
    kb.index([], taxonomy, chunk_chars=100)
    assert kb.search(vector, partitions=partitions_matching(["活动优惠"], taxonomy), n=5) == []


def test_sync_reads_existing_chunks_a_page_at_a_time(kb) -> None:  # type: ignore[no-untyped-def]
    whole = kb._metadata_by_id()
    assert len(whole) == kb.count() and kb._metadata_by_id(page=2) == whole  # big KBs exceed SQLite's variable limit


def test_unlabelled_chunks_are_found_unfiltered_and_sit_in_no_partition(
    chroma_client, collection_name, tiny_encoder_dir, taxonomy
) -> None:  # type: ignore[no-untyped-def]
    from app.kb import UNLABELLED, partition_name

    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    kb.index([Doc("Z", "会员积分怎么用。", ())], taxonomy, chunk_chars=100)
    vector = kb.embed_query("积分")
    assert [h.doc_id for h in kb.search(vector, partitions=None, n=5)] == ["Z"]
    names = {c.name for c in chroma_client.list_collections()}
    assert partition_name(collection_name, UNLABELLED) not in names
    assert not any(name.startswith(f"{collection_name}--") for name in names)


def test_partitions_search_wide_and_an_older_one_is_raised(chroma_client, collection_name, tiny_encoder_dir) -> None:  # type: ignore[no-untyped-def]
    from app.config import PARTITION_EF_SEARCH
    from app.kb import open_collection

    old = chroma_client.get_or_create_collection(
        f"{collection_name}-old", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    assert old.configuration["hnsw"]["ef_search"] == 100  # Chroma's default
    open_collection(chroma_client, f"{collection_name}-old", PARTITION_EF_SEARCH)
    assert chroma_client.get_collection(f"{collection_name}-old").configuration["hnsw"]["ef_search"] == 1500
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)), ef_search=800)
    part = kb._partition("屏幕")
    want = {"space": "cosine", "ef_search": 800, "max_neighbors": 32, "ef_construction": 200}
    assert part.configuration["hnsw"] == part.configuration["hnsw"] | want
    assert kb.collection.configuration["hnsw"]["ef_search"] == 100  # the main collection keeps Chroma's default
