"""Doc reviews: unsure doc labels queue on the review page (same token), a person's labels land in the feedback store
marked `doc_review` and become the doc's labels at the next index."""

from __future__ import annotations

from typing import Any

from app.core.doclabels import DocLabels
from app.core.docreviews import PREFIX, DocReviewQueue, WithDocReviews, review_item, reviewed_doc_labels
from app.core.feedback import FeedbackStore
from app.service.web import create_app

TOKEN = "s3cret-review-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class NoQueries:
    def __init__(self, taxonomy: Any) -> None:
        self.taxonomy = taxonomy

    async def pending(self) -> list[dict[str, Any]]:
        return [{"thread_id": "t1", "query": "屏幕花了", "candidates": [], "reasons": []}]

    async def resolve(self, thread_id: str, labels: list[str], reviewer: str) -> dict[str, Any]:
        return {"thread_id": thread_id, "labels": labels}


def test_an_unsure_doc_is_reviewed_on_the_same_page_into_the_feedback_store(taxonomy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    queue = DocReviewQueue(tmp_path / "reviews" / "docs.jsonl")
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    unsure = DocLabels(["销售", "活动优惠"], 0.2, False, ["coarse_disagree"])
    item = review_item("M7", "以旧换新", "旧手机可以折抵", unsure, taxonomy)
    assert queue.put([item]) == 1 and queue.put([item]) == 1  # queued once
    client = TestClient(create_app(lambda: WithDocReviews(NoQueries(taxonomy), queue, store), TOKEN))
    assert client.get("/review/api/pending").status_code == 401  # the same token guards doc reviews
    rows = client.get("/review/api/pending", headers=AUTH).json()["pending"]
    assert [r["thread_id"] for r in rows] == ["t1", f"{PREFIX}M7"] and rows[1]["kind"] == "doc"
    assert rows[1]["candidates"][0]["label"] == "活动优惠" and "doc_labels_unsure" in rows[1]["reasons"]
    done = client.post(
        "/review/api/resolve", headers=AUTH, json={"thread_id": "doc:M7", "labels": ["以旧换新"], "reviewer": "ann"}
    )
    assert done.status_code == 200 and done.json()["resolved"]["kind"] == "doc"
    assert queue.pending() == [] and reviewed_doc_labels(store) == {"M7": ["销售", "以旧换新"]}
    [row] = store.rows(sources=["doc_review"])
    assert row.reviewer == "ann" and row.thread_id == "doc:M7"
    assert store.training_examples(taxonomy) == []  # doc reviews label docs, not the voters' query training rows
    again = client.post(
        "/review/api/resolve", headers=AUTH, json={"thread_id": "doc:M7", "labels": ["以旧换新"], "reviewer": "ann"}
    )
    assert again.status_code == 409
