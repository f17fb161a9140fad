"""Feedback store (on SQLite and on PostgreSQL, same tests), the promotion gate (pure) and rollback over saved
versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import DataError, InputError
from app.core.feedback import FeedbackStore
from app.core.voters.store import current_version, record_promotion, set_current
from app.ops.training.retrain import promotion_decision, rollback

KEYS = ("macro_f1_A", "macro_f1_B", "auto_precision", "auto_coverage")
scores_st = st.fixed_dictionaries({key: st.floats(0, 1) for key in KEYS})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def feedback_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's URL: a SQLite file in a directory that does not exist yet, or the one a LABELGATE_DATABASE_URL
    derives (postgresql:// → postgresql+psycopg://)."""
    from app.core.config import Settings

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deep' / 'fb.sqlite'}"
    return Settings(database_url=request.getfixturevalue("postgres_url")).feedback_db_url


def test_feedback_store_records_exports_and_validates(feedback_url: str, tmp_path: Path, taxonomy) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore(feedback_url)
    store.add(thread_id="t1", query="屏幕碎了", labels=["屏幕"], source="human", reviewer="alice")
    store.add(thread_id="t2", query="屏幕碎了", labels=["屏幕", "保修政策"], source="human", reviewer="bob")
    store.add(
        thread_id="t3",
        query="双十一优惠",
        labels=["活动优惠"],
        source="llm+rules",
        reviewer="auto:rule:promo",
        model_versions={"A": "v1"},
    )
    with pytest.raises(InputError, match="source"):
        store.add(thread_id="t4", query="x", labels=["屏幕"], source="guess")
    with pytest.raises(InputError):
        store.add(thread_id="t4", query="  ", labels=["屏幕"], source="human")
    examples = store.training_examples(taxonomy)
    assert [(ex.text, ex.labels) for ex in examples] == [
        ("屏幕碎了", ("售后", "屏幕", "保修政策")),  # the latest confirmation wins
        ("双十一优惠", ("销售", "活动优惠")),
    ]
    assert [ex.text for ex in store.training_examples(taxonomy, sources=["human"])] == ["屏幕碎了"]
    out = tmp_path / "export.jsonl"
    assert store.export(out, taxonomy) == 2
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"text": "屏幕碎了", "labels": ["售后", "屏幕", "保修政策"], "source": "human", "reviewer": "bob"}
    # a label removed from the taxonomy later is an error that names the row, not a silent guess
    store.add(thread_id="t5", query="老标签", labels=["已删除的标签"], source="human", reviewer="carol")
    with pytest.raises(DataError, match="feedback #4"):
        store.training_examples(taxonomy)


def test_recording_the_same_event_again_keeps_one_row(feedback_url: str) -> None:
    store = FeedbackStore(feedback_url)
    row = {"thread_id": "t1", "query": "电池不耐用", "labels": ["电池"], "source": "human", "reviewer": "bob"}
    first, again = (store.add(**row, event="t1:review:task-1") for _ in range(2))
    other = store.add(**row, event="t1:review:task-2")
    assert first == again != other and [r.id for r in store.rows()] == [first, other]
    assert store.add(**row) != store.add(**row)  # without an event every call is a new row
    store.close()
    assert len(FeedbackStore(feedback_url).rows()) == 4  # reopening keeps the rows (and does not migrate twice)


def test_a_postgres_store_that_stops_answering_is_a_clear_error(postgres_server: str) -> None:
    from app.core.config import sqlalchemy_url
    from app.core.errors import FeedbackStoreError
    from app.ops.testservers import create_database, drop_database

    url = create_database(postgres_server)
    store = FeedbackStore(sqlalchemy_url(url), connect_timeout=2)
    row = {"thread_id": "t1", "query": "电池不耐用", "labels": ["电池"], "source": "human", "reviewer": "bob"}
    store.add(**row)
    drop_database(postgres_server, url)
    for call in (lambda: store.add(**row), store.rows):
        with pytest.raises(FeedbackStoreError, match=r"stopped answering.*LABELGATE_DATABASE_URL"):
            call()
    store.close()


def test_feedback_store_rejects_a_bad_url() -> None:
    with pytest.raises(InputError, match="cannot be opened"):
        FeedbackStore("nosuchdb://x")


def test_an_unreachable_postgres_feedback_store_is_a_clear_error_without_the_password() -> None:
    from app.ops.testservers import free_port

    url = f"postgresql+psycopg://alice:s3cret@127.0.0.1:{free_port()}/feedback"
    shown = r"postgresql\+psycopg://alice:\*\*\*@127\.0\.0\.1:\d+/feedback cannot be opened"
    with pytest.raises(InputError, match=shown) as err:
        FeedbackStore(url, connect_timeout=2)
    assert "s3cret" not in str(err.value)


@given(scores_st, scores_st)
def test_promotion_never_accepts_a_worse_score(current, candidate) -> None:  # type: ignore[no-untyped-def]
    promoted, lines = promotion_decision(current, candidate)
    assert promoted == all(candidate[k] >= current[k] for k in KEYS)  # coverage too: escalating more is worse
    assert len(lines) == len(KEYS)


@given(scores_st)
def test_promotion_of_equal_scores_and_of_a_first_version(scores) -> None:  # type: ignore[no-untyped-def]
    assert promotion_decision(scores, dict(scores))[0]
    assert promotion_decision(None, scores)[0]
    worse = scores | {"auto_precision": scores["auto_precision"] - 0.01}
    assert promotion_decision(scores, worse, tolerance=0.02)[0]


@given(scores_st, st.floats(0, 1), st.floats(0, 1))
def test_a_candidate_that_did_not_learn_the_reviews_is_not_promoted(scores, learned, needed) -> None:  # type: ignore[no-untyped-def]
    candidate = scores | {"feedback_learned": learned}
    for current in (None, dict(scores)):
        promoted, lines = promotion_decision(current, candidate, min_learned=needed)
        assert promoted == (learned >= needed)
        assert lines[0].startswith("feedback_learned")


def test_feedback_learned_counts_rows_every_voter_accepts_exactly(taxonomy) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from app.core.data import Example
    from app.core.voters.base import Voter
    from app.ops.training.evaluate import feedback_learned

    ids = taxonomy.ids
    screen = np.array([[8.0 if x in ("售后", "屏幕") else -8.0 for x in ids]])
    battery = np.array([[8.0 if x in ("售后", "电池") else -8.0 for x in ids]])

    def voter(name: str, logits: dict[str, np.ndarray]) -> Voter:
        return Voter(
            name, "v", ids, lambda texts: np.vstack([logits[t] for t in texts]), thresholds=dict.fromkeys(ids, 0.5)
        )

    rows = [Example("屏幕碎了", ("售后", "屏幕")), Example("电池鼓包", ("售后", "电池"))]
    knows_both = voter("A", {"屏幕碎了": screen, "电池鼓包": battery})
    confuses = voter("B", {"屏幕碎了": screen, "电池鼓包": screen})
    assert feedback_learned([knows_both, knows_both], rows, taxonomy) == 1.0
    assert feedback_learned([knows_both, confuses], rows, taxonomy) == 0.5
    assert feedback_learned([knows_both], [], taxonomy) is None


def test_rollback_walks_back_promotions(settings) -> None:  # type: ignore[no-untyped-def]
    voters = settings.voters_dir
    for version in ("v1", "v2", "v3"):
        for name in ("A", "B"):
            (voters / name / version).mkdir(parents=True)
    with pytest.raises(InputError, match="nothing to roll back"):
        rollback(settings)
    for version in ("v1", "v2"):
        record_promotion(voters, version, note="train")
        for name in ("A", "B"):
            set_current(voters, name, version)
    # v3 was trained but not promoted: rollback ignores it
    assert rollback(settings) == {"from": "v2", "to": "v1"}
    assert current_version(voters, "A") == current_version(voters, "B") == "v1"
    with pytest.raises(InputError, match="v1 is the oldest"):
        rollback(settings)


def test_an_older_feedback_store_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the schema before `event` existed
        conn.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created FLOAT NOT NULL,"
            " thread_id VARCHAR(200) NOT NULL, query TEXT NOT NULL, labels JSON NOT NULL, source VARCHAR(20) NOT NULL,"
            " reviewer VARCHAR(200), model_versions JSON NOT NULL)"
        )
        conn.execute(
            "INSERT INTO feedback (created, thread_id, query, labels, source, reviewer, model_versions)"
            " VALUES (1.0, 't0', '屏幕碎了', '[\"屏幕\"]', 'human', 'alice', '{}')"
        )
    store = FeedbackStore(f"sqlite:///{path}")
    [old] = store.rows()
    assert (old.query, old.labels, old.event) == ("屏幕碎了", ["屏幕"], None)
    row = {"thread_id": "t1", "query": "电池", "labels": ["电池"], "source": "human", "reviewer": "bob"}
    first, again = (store.add(**row, event="t1:review:x") for _ in range(2))
    assert first == again and len(store.rows()) == 2
    assert len(FeedbackStore(f"sqlite:///{path}").rows()) == 2  # reopening does not migrate twice


def test_labelled_kb_docs_become_chunked_training_rows_up_to_the_limit(taxonomy) -> None:  # type: ignore[no-untyped-def]
    from app.core.data import Doc
    from app.ops.training.splits import doc_rows

    docs = [
        Doc("a", "屏幕碎了可以免费换。" * 3, ("售后", "屏幕")),
        Doc("b", "活动期间以旧换新补贴。", ("销售", "以旧换新")),
        Doc("c", "没有标签的文档。"),
    ]
    rows = doc_rows(docs, chunk_chars=12, limit=100, seed=0)
    assert [r.labels for r in rows] == [("售后", "屏幕")] * 3 + [("销售", "以旧换新")]  # chunked; unlabelled skipped
    assert all(len(r.text) <= 12 for r in rows)
    sample = doc_rows(docs, chunk_chars=12, limit=2, seed=0)
    assert len(sample) == 2 and set(sample) <= set(rows) and sample == doc_rows(docs, chunk_chars=12, limit=2, seed=0)
    assert doc_rows(docs, chunk_chars=12, limit=0, seed=0) == []


@given(
    st.lists(st.sampled_from(["屏幕", "电池", "数据迁移"]), min_size=0, max_size=30),
    st.lists(st.sampled_from(["屏幕", "电池", "数据迁移"]), min_size=1, max_size=8),
    st.integers(1, 5),
    st.integers(0, 60),
)
def test_feedback_rows_repeat_until_their_label_is_learnable(base_labels, fb_labels, repeat, min_rows) -> None:  # type: ignore[no-untyped-def]
    from collections import Counter

    from app.core.data import Example
    from app.ops.training.train import MAX_FEEDBACK_REPEAT, merge_examples

    base = [Example(f"b{i}", (label,)) for i, label in enumerate(base_labels)]
    extra = [Example(f"f{i}", (label,)) for i, label in enumerate(fb_labels)]
    rows = merge_examples(base, extra, repeat=repeat, min_label_rows=min_rows)
    copies = Counter(ex.text for ex in rows)
    assert all(copies[ex.text] == 1 for ex in base)
    assert all(repeat <= copies[ex.text] <= max(repeat, MAX_FEEDBACK_REPEAT) for ex in extra)
    per_label = Counter(label for ex in rows for label in ex.labels)
    for label in set(fb_labels):  # enough rows now, unless the repeat cap stopped it
        capped = all(copies[ex.text] == MAX_FEEDBACK_REPEAT for ex in extra if ex.labels == (label,))
        assert per_label[label] >= min_rows or capped
    assert merge_examples(base, extra, repeat=repeat) == merge_examples(base, extra, repeat=repeat, min_label_rows=0)
