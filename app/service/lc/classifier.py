"""LabelGateClassifier: the gate (both voters + the vote policy) as a LangChain Runnable — text → labels,
probabilities, decision — for LCEL (`classifier | router`), batch and async."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr

from app.service.lc.gate import Gate, checked, probabilities


class Classification(TypedDict):
    query: str  # the cleaned query the voters saw
    decision: str  # auto | escalate
    labels: list[str]  # auto: the labels both voters agree on (fine + coarse parents); escalate: []
    candidates: list[str]  # every label either voter accepted (what an escalation would weigh)
    probabilities: dict[str, float]  # the voters' mean probability per label
    confidence: float
    reasons: list[str]
    votes: dict[str, Any]  # per voter: probs, accepted, thresholds, version


class LabelGateClassifier(RunnableSerializable[str, Classification]):
    """`LabelGateClassifier(components=Components.load(settings))`; invoke/batch/ainvoke/abatch come from Runnable
    (the async ones run the sync gate on a worker thread: it is CPU work on the voters)."""

    # Any: pydantic cannot build a validator for the Components dataclass's fields; `checked` tests the type
    components: Annotated[Any, AfterValidator(checked)] = Field(exclude=True)
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _gate: Gate = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._gate = Gate(self.components)

    def _classify(self, query: str) -> Classification:
        state = self._gate.decide(query)
        auto = state["decision"] == "auto"
        return Classification(
            query=state["query"],
            decision=state["decision"],
            labels=list(state["labels"]) if auto else [],
            candidates=list(state["candidates"]),
            probabilities=probabilities(state),
            confidence=state["confidence"],
            reasons=list(state["reasons"]),
            votes=state["votes"],
        )

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> Classification:
        return self._call_with_config(self._classify, input, config, run_type="chain")
