"""review: pause for a person with interrupt(); the checkpointer persists the pause across restarts.

Resume with Command(resume={"labels": [...], "reviewer": "..."}). An invalid resume value pauses again with the
error in the payload, so nothing a reviewer sends can crash the run or slip labels past the taxonomy.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from app.core.errors import ReviewError
from app.core.feedback import FeedbackStore
from app.core.reviews import review_payload, validate_resume
from app.core.taxonomy import Taxonomy
from graph.state import State
from nodes.rules import record_feedback


class Review:
    def __init__(self, taxonomy: Taxonomy, feedback: FeedbackStore | None = None) -> None:
        self.taxonomy = taxonomy
        self.feedback = feedback

    def __call__(self, state: State, config: RunnableConfig) -> dict[str, Any]:
        error = None
        while True:
            value = interrupt(review_payload(dict(state), self.taxonomy, error))
            try:
                labels, reviewer = validate_resume(value, self.taxonomy)
                break
            except ReviewError as exc:
                error = str(exc)
        review = {
            "status": "resolved",
            "reviewer": reviewer,
            "labels": labels,
            "mode": "after_answer" if state.get("answer_kind") else "before_answer",
            "resolved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        record_feedback(self.feedback, state, config, labels, "human", reviewer=reviewer)
        return {
            "labels": labels,
            "label_source": "human",
            "route": "reviewed",
            "review": review,
            "reasons": [f"reviewed_by:{reviewer}"],
        }
