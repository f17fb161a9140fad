"""The retrieval contract every Chroma backend passes: embedded (in-process) and a `chroma run` server over HTTP run
the same tests — chunking, idempotent sync and deletion of changed docs, voter labels aggregated to every chunk,
multi-label partitions with Chinese label ids, partition search equal to Chroma's own `where labels $contains`,
widening through the retrieve node, and a clear KnowledgeBaseError for a missing collection or an unusable store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.core.data import Doc
from app.core.kb import KnowledgeBase, KnowledgeBaseError, make_client, partition_name
from app.core.ranking import partitions_matching
from app.core.voters.encoders import HFEncoder
from nodes.retrieve import Retrieve


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def chroma_client(request: pytest.FixtureRequest, settings):  # type: ignore[no-untyped-def]
    """Overrides conftest's client: every test here, and the `kb` fixture, runs on both backends. The server client
    comes from the settings alone (LABELGATE_CHROMA_URL), as in production."""
    from app.core.kb import ephemeral_client

    if request.param == "embedded":
        return ephemeral_client()
    return make_client(settings.model_copy(update={"chroma_url": request.getfixturevalue("chroma_server_url")}))


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
    vector = kb.embed_query("以旧换新")
    assert kb.search(vector, partitions=partitions_matching(["以旧换新"], taxonomy), n=5) == []  # gone everywhere


def test_voter_labels_aggregate_to_every_chunk(chroma_client, collection_name, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))

    def labeler(chunks):  # type: ignore[no-untyped-def]
        return [["电池"] if "电池" in c else ["活动优惠"] for c in chunks]

    kb.index([Doc("M", "电池换新。双十一活动。", ())], taxonomy, chunk_chars=7, labeler=labeler)
    got = kb.collection.get(include=["metadatas"])
    assert len(got["metadatas"]) == 2
    for meta in got["metadatas"]:
        assert meta["labels"] == ["售后", "销售", "电池", "活动优惠"] and meta["label_source"] == "voters"


def test_a_doc_labeller_labels_each_doc_whole_with_a_confidence_every_chunk_carries(
    chroma_client, collection_name, tiny_encoder_dir, taxonomy
) -> None:  # type: ignore[no-untyped-def]
    from app.core.doclabels import DocLabels

    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))

    class Whole:
        def __call__(self, chunks):  # type: ignore[no-untyped-def]
            raise AssertionError("a doc labeller is asked per doc, not per chunk")

        def __init__(self) -> None:
            self.seen: list[list[str]] = []

        def label_docs(self, docs, chunks):  # type: ignore[no-untyped-def]
            assert [doc.id for doc in docs] == ["M"]
            self.seen += chunks
            return [DocLabels(["售后", "电池"], 0.25 * len(texts), False) for texts in chunks]

    docs = [Doc("M", "电池换新。双十一活动。", (), "换新"), Doc("G", "屏幕维修。", ("售后", "屏幕"))]
    labeller = Whole()
    kb.index(docs, taxonomy, chunk_chars=7, labeler=labeller)
    assert labeller.seen == [["换新\n电池换新。", "换新\n双十一活动。"]]  # each chunk under its doc's title
    got = kb.collection.get(include=["metadatas"])
    metas = {cid: meta for cid, meta in zip(got["ids"], got["metadatas"], strict=True)}
    for cid in ("M#0", "M#1"):
        assert metas[cid]["labels"] == ["售后", "电池"] and metas[cid]["label_confidence"] == 0.5
    assert "label_confidence" not in metas["G#0"] and metas["G#0"]["label_source"] == "given"
    hits = {hit.id: hit for hit in kb.search(kb.embed_query("电池"), partitions=None, n=5)}
    assert hits["M#0"].label_confidence == 0.5 and hits["M#0"].label_source == "voters"
    assert hits["G#0"].label_confidence is None and hits["G#0"].label_source == "given"


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
    names = {c.name for c in chroma_client.list_collections()}
    for label in ("电池", "活动优惠", "屏幕"):  # Chinese label ids live in [a-zA-Z0-9._-] collection names
        assert partition_name(collection_name, label) in names
        assert chroma_client.get_collection(partition_name(collection_name, label)).count() == 1


def test_soft_gating_admits_the_best_machine_labelled_chunks_and_says_so(kb, taxonomy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    state = {"query": "屏幕", "labels": ["售后", "屏幕"], "label_source": "voters", "confidence": 0.9, "reasons": []}
    hard = Retrieve(kb, taxonomy, top_k=3, fetch_k=6, soft=False)(state)
    search, unfiltered = kb.search, []

    def counted(vector, *, partitions, n):  # type: ignore[no-untyped-def]
        unfiltered.extend([n] if partitions is None else [])
        return search(vector, partitions=partitions, n=n)

    monkeypatch.setattr(kb, "search", counted)
    assert not kb.has_machine_labels()  # every doc labelled by its author: the filter holds, nothing to admit
    given = Retrieve(kb, taxonomy, top_k=3, fetch_k=6)(state)
    hard_ids = [d["chunk_id"] for d in hard["docs"]]
    assert [d["chunk_id"] for d in given["docs"]] == hard_ids and given["filter_used"]["admitted"] == 0
    assert unfiltered == []  # and the unfiltered query, which could admit nothing, is not made
    measured = Retrieve(kb, taxonomy, top_k=3, fetch_k=6, reliability={"voters": 0.5})(state)  # trust 0.45
    assert measured["filter_used"]["admitted"] > 0 and unfiltered == [6]  # unreliable labels: no wall
    assert "admitted_author_labelled:query_unsure" in measured["reasons"]
    assert all(d["label_source"] == "given" for d in measured["docs"])
    unfiltered.clear()

    def machine_labelled(vector, *, partitions, n):  # type: ignore[no-untyped-def]
        hits = search(vector, partitions=partitions, n=n)
        return [dataclasses.replace(h, label_source="voters", label_confidence=0.4) for h in hits]

    monkeypatch.setattr(kb, "search", machine_labelled)
    monkeypatch.setattr(kb, "has_machine_labels", lambda: True)
    soft = Retrieve(kb, taxonomy, top_k=3, fetch_k=6)(state)
    soft_ids = [d["chunk_id"] for d in soft["docs"]]
    assert soft_ids[: len(hard_ids)] == hard_ids  # admitting never drops or reorders the filtered candidates
    assert {h.id for h in search(kb.embed_query("屏幕"), partitions=None, n=6)} <= set(soft_ids)
    admitted = [d for d in soft["docs"] if d["stage"] == "admitted"]
    assert len(admitted) == soft["filter_used"]["admitted"] > 0 == hard["filter_used"]["admitted"]
    assert f"admitted_unfiltered:{len(admitted)}" in soft["reasons"]
    assert all(d["label_source"] == "voters" and d["label_confidence"] == 0.4 for d in soft["docs"])


def test_the_kb_knows_whether_a_machine_labelled_any_chunk(kb, taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert not kb.has_machine_labels()
    kb.index([Doc("M", "电池换新。", ())], taxonomy, chunk_chars=50, labeler=lambda texts: [["电池"] for _ in texts])
    assert kb.has_machine_labels()  # read again after the index wrote into this generation
    kb.index([Doc("M", "电池换新。", ("电池",))], taxonomy, chunk_chars=50)  # its author labels it now
    assert not kb.has_machine_labels()


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


def test_retrieve_widens_fine_to_coarse_to_none(kb, taxonomy) -> None:  # type: ignore[no-untyped-def]
    retrieve = Retrieve(kb, taxonomy, top_k=3, fetch_k=6, soft=False)
    exact = retrieve({"query": "屏幕", "labels": ["售后", "屏幕"], "reasons": []})
    assert {d["doc_id"] for d in exact["docs"]} == {"D1", "D2", "D3"} and exact["widened"] is False
    assert exact["filter_used"]["stage"] == "fine"
    wide = retrieve({"query": "以旧换新", "labels": ["销售", "以旧换新"], "reasons": []})
    ids = [d["doc_id"] for d in wide["docs"]]
    assert ids[0] == "D4" and {"D5", "D6"} <= set(ids)  # fine stage found only D4; coarse 销售 adds D5, D6
    assert wide["widened"] and wide["filter_used"]["widened_to"] == "coarse"
    assert "widened_to:coarse" in wide["reasons"]
    nothing = retrieve({"query": "投诉", "labels": ["投诉", "服务态度"], "reasons": []})
    assert len(nothing["docs"]) >= 3 and nothing["filter_used"]["widened_to"] == "none"


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
    whole = kb._chunk_state()
    assert len(whole) == kb.count() and kb._chunk_state(page=2) == whole  # big KBs exceed SQLite's variable limit


def test_unlabelled_chunks_are_found_unfiltered_and_sit_in_no_partition(
    chroma_client, collection_name, tiny_encoder_dir, taxonomy
) -> None:  # type: ignore[no-untyped-def]
    from app.core.kb import UNLABELLED

    kb = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    kb.index([Doc("Z", "会员积分怎么用。", ())], taxonomy, chunk_chars=100)
    vector = kb.embed_query("积分")
    assert [h.doc_id for h in kb.search(vector, partitions=None, n=5)] == ["Z"]
    names = {c.name for c in chroma_client.list_collections()}
    assert partition_name(collection_name, UNLABELLED) not in names
    assert not any(name.startswith(f"{collection_name}--") for name in names)


def test_partitions_search_wide_and_an_older_one_is_raised(chroma_client, collection_name, tiny_encoder_dir) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import PARTITION_EF_SEARCH
    from app.core.kb import open_collection

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


def test_a_missing_collection_is_a_clear_error(chroma_client, kb, collection_name, taxonomy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KnowledgeBaseError, match=r"'never-indexed' does not exist: run `labelgate index`"):
        KnowledgeBase.open(chroma_client, "never-indexed", kb.embedder, create=False)
    assert KnowledgeBase.open(chroma_client, collection_name, kb.embedder, create=False).count() == kb.count()
    chroma_client.delete_collection(collection_name)  # dropped under a running service
    vector = kb.embed_query("屏幕")
    for partitions in (None, partitions_matching(["屏幕"], taxonomy)):
        with pytest.raises(KnowledgeBaseError, match="no longer exists: run `labelgate index`"):
            kb.search(vector, partitions=partitions, n=3)
    out = Retrieve(kb, taxonomy, top_k=3, fetch_k=6)({"query": "屏幕", "labels": ["售后", "屏幕"], "reasons": []})
    assert out["docs"] == [] and out["reasons"] == ["retrieve_failed:kb_unavailable"]


def test_settings_alone_select_the_backend(settings, chroma_server_url, tiny_encoder_dir, taxonomy) -> None:  # type: ignore[no-untyped-def]
    """No URL: a PersistentClient in <home>/chroma. LABELGATE_CHROMA_URL: the server's collections (another client of
    the same server sees what this one indexed)."""
    import chromadb

    from app.core.kb import open_collection

    encoder = HFEncoder(str(tiny_encoder_dir))
    docs = [Doc("S", "屏幕保修。", ("售后", "屏幕"))]
    KnowledgeBase.open(make_client(settings), "embedded-kb", encoder).index(docs, taxonomy, chunk_chars=50)
    assert (settings.chroma_dir / "chroma.sqlite3").is_file()
    served = settings.model_copy(update={"chroma_url": chroma_server_url, "collection": f"kb-{time.time_ns()}"})
    KnowledgeBase.open(make_client(served), served.collection, encoder).index(docs, taxonomy, chunk_chars=50)
    host, port = chroma_server_url.removeprefix("http://").split(":")
    other = chromadb.HttpClient(host=host, port=int(port))
    assert open_collection(other, served.collection).count() == 1


def test_an_unreachable_server_is_a_clear_error_within_the_timeout(settings) -> None:  # type: ignore[no-untyped-def]
    from app.ops.testservers import free_port

    nobody = settings.model_copy(update={"chroma_url": f"http://127.0.0.1:{free_port()}", "chroma_timeout": 2.0})
    started = time.perf_counter()
    unreachable = r"Chroma server at http://127\.0\.0\.1:\d+ is unreachable.*chroma run"
    with pytest.raises(KnowledgeBaseError, match=unreachable):
        make_client(nobody)
    assert time.perf_counter() - started < 2.5
    with pytest.raises(KnowledgeBaseError, match="not an http"):
        make_client(settings.model_copy(update={"chroma_url": "ftp://somewhere"}))


@pytest.mark.server
def test_a_server_that_stops_while_serving_fails_retrieval_cleanly(  # type: ignore[no-untyped-def]
    settings, tmp_path: Path, tiny_encoder_dir, taxonomy
) -> None:
    from app.ops.testservers import chroma_server

    with chroma_server(tmp_path / "own-server") as url:
        kb = KnowledgeBase.open(
            make_client(settings.model_copy(update={"chroma_url": url, "chroma_timeout": 3.0})),
            "stops",
            HFEncoder(str(tiny_encoder_dir)),
        )
        kb.index([Doc("S", "屏幕保修。", ("售后", "屏幕"))], taxonomy, chunk_chars=50)
        retrieve = Retrieve(kb, taxonomy, top_k=3, fetch_k=6)
        assert [d["doc_id"] for d in retrieve({"query": "屏幕", "labels": ["屏幕"], "reasons": []})["docs"]] == ["S"]
    started = time.perf_counter()
    with pytest.raises(KnowledgeBaseError, match="failed"):
        kb.search(kb.embed_query("屏幕"), partitions=None, n=3)
    out = retrieve({"query": "屏幕", "labels": ["屏幕"], "reasons": []})
    assert out["reasons"] == ["retrieve_failed:kb_unavailable"] and out["docs"] == []
    assert time.perf_counter() - started < 7  # two failed requests, each bounded by chroma_timeout


def test_an_unusable_embedded_store_is_a_clear_error(settings) -> None:  # type: ignore[no-untyped-def]
    settings.home.mkdir(parents=True)
    (settings.home / "chroma").write_text("not a directory")
    with pytest.raises(KnowledgeBaseError, match="cannot open the embedded Chroma store"):
        make_client(settings)
