"""Data safety (issue 9, item 6): retrain never touches what serves until promotion; a crash (an exception, or a real
SIGKILL of a child process) during retrain or indexing leaves the previous version serving; `labelgate models
rollback` restores the previous version. Tiny random-init encoders, the CLI's tiny data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.core.data import Doc
from app.core.kb import KnowledgeBase
from app.core.kb_generations import index_atomically, serving_generation, stale_generations
from app.core.voters.store import current_version, promote_pair, promotion_history, recover_switch
from tests.conftest import ROOT, SEED_DOCS, write_jsonl
from tests.unit.app.cli.test_cli import env, run

__all__ = ["env"]  # the CLI's tiny data dir and LABELGATE_* settings (a fixture)


def docs_v1(taxonomy) -> list[Doc]:  # type: ignore[no-untyped-def]
    return [Doc(i, t, tuple(taxonomy.expand(x)), f"title {i}") for i, t, x in SEED_DOCS]


def docs_v2(taxonomy) -> list[Doc]:  # type: ignore[no-untyped-def]
    extra = [Doc(f"N{i}", f"新款手机第{i}代以旧换新活动。", tuple(taxonomy.expand(["以旧换新"]))) for i in range(5)]
    return docs_v1(taxonomy)[1:] + extra  # D1 removed, five docs added


def ids(kb: KnowledgeBase) -> set[str]:
    return {meta["doc_id"] for meta in kb.collection.get(include=["metadatas"])["metadatas"]}


def test_an_index_that_fails_midway_leaves_the_previous_generation_serving(
    chroma_client, collection_name, tiny_encoder_dir, taxonomy, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from app.core.voters.encoders import HFEncoder

    monkeypatch.setattr("app.core.kb.FOLLOW_SECONDS", 0.0)  # serving processes look at the pointer on every query
    serving = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    first = index_atomically(serving, collection_name, docs_v1(taxonomy), taxonomy, chunk_chars=100)
    assert first["switched"] and serving_generation(chroma_client, collection_name) == first["generation"]
    vector = serving.embed_query("屏幕保修")
    assert {hit.doc_id for hit in serving.search(vector, partitions=None, n=10)} == {i for i, _, _ in SEED_DOCS}

    def broken_labeler(texts: Any) -> list[list[str]]:
        raise RuntimeError("voters crashed mid-index")

    unlabelled = [*docs_v2(taxonomy), Doc("U1", "没有标签的文档。")]
    with pytest.raises(RuntimeError, match="mid-index"):
        index_atomically(serving, collection_name, unlabelled, taxonomy, chunk_chars=100, labeler=broken_labeler)
    assert serving_generation(chroma_client, collection_name) == first["generation"]  # the pointer did not move
    assert {hit.doc_id for hit in serving.search(vector, partitions=None, n=10)} == {i for i, _, _ in SEED_DOCS}
    assert stale_generations(chroma_client, collection_name, keep=[first["generation"]]) == [collection_name]
    assert len(serving.search(vector, partitions=["屏幕"], n=10)) == 3  # partitions intact too

    second = index_atomically(serving, collection_name, docs_v2(taxonomy), taxonomy, chunk_chars=100)
    assert second["switched"] and second["previous"] == first["generation"]
    assert second["deleted"] == 1 and second["upserted"] == 5 and second["unchanged"] == len(SEED_DOCS) - 1
    now = {hit.doc_id for hit in serving.search(vector, partitions=None, n=20)}
    assert "D1" not in now and {"N0", "N4"} <= now  # the serving KB followed the pointer
    assert {hit.doc_id for hit in serving.search(vector, partitions=["以旧换新"], n=20)} >= {"D4", "N0", "N4"}
    old = KnowledgeBase.open(chroma_client, first["generation"], serving.embedder, create=False, follow=False)
    assert "D1" in ids(old)  # a process that has not followed yet keeps answering from the previous generation
    # the pre-generation collection is gone; only the serving and the previous generation remain
    assert stale_generations(chroma_client, collection_name, keep=[]) == sorted(
        [first["generation"], second["generation"]]
    )
    again = index_atomically(serving, collection_name, docs_v2(taxonomy), taxonomy, chunk_chars=100)
    assert not again["switched"] and again["generation"] == second["generation"]  # unchanged: nothing switches
    third = index_atomically(serving, collection_name, docs_v1(taxonomy), taxonomy, chunk_chars=100)
    assert stale_generations(chroma_client, collection_name, keep=[]) == sorted(
        [second["generation"], third["generation"]]
    )


def _data_dir(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "taxonomy.yaml").write_bytes((ROOT / "data" / "taxonomy.yaml").read_bytes())
    write_jsonl(data / "kb" / "docs.jsonl", [{"id": i, "text": t, "labels": x} for i, t, x in SEED_DOCS])
    many = [{"id": f"M{i}", "text": f"第{i}号门店屏幕维修和保修说明。", "labels": ["屏幕"]} for i in range(80)]
    write_jsonl(tmp_path / "docs-v2.jsonl", many)
    for key, value in {
        "DATA_DIR": data,
        "HOME": tmp_path / "home",
        "EMBEDDER": tiny_encoder_dir,
        "COLLECTION": "kill-test",
        "LLM_LOCAL": "false",
    }.items():
        monkeypatch.setenv(f"LABELGATE_{key}", str(value))
    return data


def _python(code: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SERVING = """
    import json
    from app.core.config import load_settings
    from app.core.embedder import load_embedder, open_kb
    from app.core.kb import make_client
    from app.core.kb_generations import stale_generations

    s = load_settings()
    client = make_client(s)
    kb = open_kb(s, client, load_embedder(s))
    metas = kb.collection.get(include=["metadatas"])["metadatas"]
    hits = kb.search(kb.embed_query("屏幕保修"), partitions=["屏幕"], n=5)
    print(json.dumps({"generation": kb.collection.name, "docs": sorted({m["doc_id"] for m in metas}),
                      "hits": [h.doc_id for h in hits], "generations": stale_generations(client, s.collection, [])}))
"""
KILL_MID_INDEX = """
    import os, signal, sys
    from app.core.kb import KnowledgeBase

    real, calls, real_index = KnowledgeBase._write, [], KnowledgeBase.index
    KnowledgeBase.index = lambda self, *args, **kw: real_index(self, *args, **kw | {"batch_size": 16})

    def write(self, batch, vectors):
        real(self, batch, vectors)
        calls.append(len(batch))
        if len(calls) == 2:  # two batches of the new generation written, more to come
            os.kill(os.getpid(), signal.SIGKILL)

    KnowledgeBase._write = write
    from app.cli import main
    sys.argv = ["labelgate", "index", "--docs", %r]
    main()
"""


def test_sigkill_mid_index_leaves_the_previous_index_serving(
    tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_dir(tmp_path, tiny_encoder_dir, monkeypatch)
    first = _python("from app.cli import main; import sys; sys.argv = ['labelgate', 'index']; main()")
    assert first.returncode == 0, first.stderr
    before = _python(SERVING)
    assert before.returncode == 0, before.stderr
    served = json.loads(before.stdout.strip().splitlines()[-1])
    assert served["docs"] == sorted(i for i, _, _ in SEED_DOCS) and served["hits"]

    killed = _python(KILL_MID_INDEX % str(tmp_path / "docs-v2.jsonl"))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    after = _python(SERVING)
    assert after.returncode == 0, after.stderr
    still = json.loads(after.stdout.strip().splitlines()[-1])
    partial = set(still.pop("generations")) - set(served.pop("generations"))
    assert still == served  # the same generation serves, with the same docs and the same answers
    assert len(partial) == 1  # the half-built copy the kill left behind: never served, dropped by the next run

    v2 = str(tmp_path / "docs-v2.jsonl")
    done = _python(f"from app.cli import main; import sys; sys.argv = ['labelgate', 'index', '--docs', {v2!r}]; main()")
    assert done.returncode == 0, done.stderr
    now = json.loads(_python(SERVING).stdout.strip().splitlines()[-1])
    assert now["generation"] != served["generation"] and len(now["docs"]) == 80 and now["hits"][0].startswith("M")
    assert now["generations"] == sorted([served["generation"], now["generation"]])  # the half-built copy is gone


def _versions(env: Path) -> tuple[str | None, str | None]:
    voters = env / "home" / "voters"
    return current_version(voters, "A"), current_version(voters, "B")


def test_retrain_killed_mid_way_leaves_the_current_pair_serving(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("train")[0] == 0
    assert run("index")[0] == 0
    v1 = _versions(env)
    assert v1[0] == v1[1] is not None
    kill_on = """
        import os, signal, sys
        import app.ops.training.retrain
        import {module} as target

        # the gate passes, the switch runs
        app.ops.training.retrain.promotion_decision = lambda *args, **kw: (True, ["forced"])
        real, calls = target.{name}, []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == {nth}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        target.{name} = wrapped
        from app.cli import main
        sys.argv = ["labelgate", "retrain"]
        main()
    """
    voters = env / "home" / "voters"
    # 1: while saving the new pair (A's new version written, B's not); 2: between moving A's and B's pointers
    for module, name in (("app.ops.training.train", "save_voter"), ("app.core.voters.store", "set_current")):
        killed = _python(kill_on.format(module=module, name=name, nth=2))
        assert killed.returncode == -signal.SIGKILL, (module, killed.stderr[-2000:])
        assert _versions(env) == v1, module  # what serves did not change
        code, out = run("ask", "屏幕裂了", "--json")
        assert code == 0, out
    assert (voters / "SWITCH").is_file()  # the second kill left an unfinished switch: readers ignore it
    assert (voters / "A" / "CURRENT").read_text().strip() != v1[0]  # A's pointer had moved before the kill
    recover_switch(voters)
    assert not (voters / "SWITCH").exists() and (voters / "A" / "CURRENT").read_text().strip() == v1[0]
    assert [e["version"] for e in promotion_history(voters)] == [v1[0]]  # no promotion was recorded


def test_models_rollback_restores_the_previous_version(env: Path) -> None:
    assert run("train")[0] == 0
    assert run("index")[0] == 0
    v1 = _versions(env)
    code, out = run("train", "--json")  # a second promoted version
    assert code == 0, out
    v2 = json.loads(out)["version"]
    assert _versions(env) == (v2, v2) != v1
    code, out = run("models", "rollback")
    assert code == 0 and f"rolled back {v2} → {v1[0]}" in out, out
    assert _versions(env) == v1
    assert run("ask", "屏幕裂了")[0] == 0
    code, out = run("models", "rollback")
    assert code == 2 and "nothing to roll back" in out and "error:" in out


def test_two_trainings_in_one_second_of_one_process_get_their_own_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the rollback test: a second `train` within the same second reused the version and failed to save."""
    import time

    from app.core.voters.store import new_version

    monkeypatch.setattr(time, "strftime", lambda fmt, *_: "v20261202-161500-")  # one frozen second
    first, second = new_version(), new_version()
    assert first != second and first.startswith("v20261202-161500-") and second.startswith("v20261202-161500-")


def test_a_pair_switch_is_all_or_nothing(tmp_path: Path) -> None:
    voters = tmp_path / "voters"
    for version in ("v1", "v2"):
        for name in ("A", "B"):
            (voters / name / version).mkdir(parents=True)
    promote_pair(voters, "v1", note="train")
    with pytest.raises(Exception, match="no version v9"):
        promote_pair(voters, "v9", note="train")
    assert current_version(voters, "A") == current_version(voters, "B") == "v1"
    promote_pair(voters, "v2", note="retrain")
    assert current_version(voters, "A") == current_version(voters, "B") == "v2"
    assert [e["version"] for e in promotion_history(voters)] == ["v1", "v2"]
    (voters / "HISTORY.jsonl").open("a").write('{"version": "v3", "no')  # a line cut short by a crash
    assert [e["version"] for e in promotion_history(voters)] == ["v1", "v2"]


def test_an_index_of_unchanged_inputs_copies_nothing(
    chroma_client, collection_name, tiny_encoder_dir, taxonomy
) -> None:  # type: ignore[no-untyped-def]
    from app.core.kb_generations import pointer_name
    from app.core.voters.encoders import HFEncoder

    serving = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    built = index_atomically(serving, collection_name, docs_v1(taxonomy), taxonomy, chunk_chars=100, fingerprint="fp1")
    names = sorted(c.name for c in chroma_client.list_collections())
    copies: list[str] = []
    real = serving.collection.__class__.add

    def add(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        copies.append(self.name)
        return real(self, *args, **kwargs)

    serving.collection.__class__.add = add  # type: ignore[method-assign]
    try:
        same = index_atomically(
            serving, collection_name, docs_v1(taxonomy), taxonomy, chunk_chars=100, fingerprint="fp1"
        )
        assert copies == [] and not same["switched"] and same["chunks"] == same["unchanged"] == len(SEED_DOCS)
        assert sorted(c.name for c in chroma_client.list_collections()) == names
        other = index_atomically(
            serving, collection_name, docs_v1(taxonomy), taxonomy, chunk_chars=100, fingerprint="fp2"
        )
        assert copies and not other["switched"] and other["generation"] == built["generation"]  # copied, unchanged
    finally:
        serving.collection.__class__.add = real  # type: ignore[method-assign]
    assert chroma_client.get_collection(pointer_name(collection_name)).metadata["fingerprint"] == "fp2"
    assert sorted(c.name for c in chroma_client.list_collections()) == names  # the unchanged copy was dropped
