"""Per-run options: the graph's `context_schema` (LangGraph ≥ 0.6 names it so; it replaces `config_schema`).

Studio shows these as the run's context form; API callers pass them per run (`graph.invoke(input, config,
context={...})`, `client.runs.wait(..., context={...})` with langgraph_sdk, `Assistant.ask(..., options={...})`).
Every field is optional: absent (None) means the settings' value (app/core/config.py), so a run without options
behaves exactly as configured. Nodes read them through `options_of(runtime)`; the classify node records the ones a
run set in `reasons` (`option:<name>=<value>`), so a trace shows why a run differed from the configured default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.config import RerankWeights, VoteSettings
from app.core.errors import InputError

ReviewOverride = Literal["taxonomy", "before_answer", "after_answer"]


class RunOptions(BaseModel):
    """What a run may vary without touching the settings; None: the settings' value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int | None = Field(None, ge=1, le=50, description="documents the answer sees")
    fetch_k: int | None = Field(None, ge=1, le=500, description="candidates fetched per filter stage before rerank")
    min_margin: float | None = Field(None, ge=0, le=1, description="vote: lowest accepted minus highest rejected prob")
    min_fine_agreement: float | None = Field(None, ge=0, le=1, description="vote: Jaccard of the voters' fine labels")
    rerank_semantic: float | None = Field(None, ge=0, description="rerank weight of the semantic score")
    rerank_label: float | None = Field(None, ge=0, description="rerank weight of the label match")
    rerank_keyword: float | None = Field(None, ge=0, description="rerank weight of the keyword overlap")
    review_mode: ReviewOverride | None = Field(
        None,
        description="unconfirmed labels: taxonomy (each label's own mode), before_answer (always ask a person "
        "first), after_answer (answer under the coarse filter, review after, where a coarse label is known)",
    )
    llm: bool | None = Field(None, description="false: no LLM call in this run (rules only; passages as the answer)")

    def set_fields(self) -> dict[str, Any]:
        """The options this run sets (not None), in field order."""
        return {name: value for name, value in self.model_dump().items() if value is not None}

    def vote(self, policy: VoteSettings) -> VoteSettings:
        """`policy` with this run's overrides; `policy` itself when there are none (no copy per query)."""
        pairs = (("min_margin", self.min_margin), ("min_fine_agreement", self.min_fine_agreement))
        update = {k: v for k, v in pairs if v is not None}
        return policy.model_copy(update=update) if update else policy

    def rerank(self, weights: RerankWeights) -> RerankWeights:
        """`weights` with this run's overrides; `weights` itself when there are none."""
        pairs = (("semantic", self.rerank_semantic), ("label", self.rerank_label), ("keyword", self.rerank_keyword))
        update = {k: v for k, v in pairs if v is not None}
        return weights.model_copy(update=update) if update else weights


NO_OPTIONS = RunOptions()


def parse_options(raw: RunOptions | Mapping[str, Any] | None) -> RunOptions:
    """Options from a caller (dict or RunOptions); bad ones are an InputError naming the field and the rule."""
    if raw is None:
        return NO_OPTIONS
    if isinstance(raw, RunOptions):
        return raw
    if not isinstance(raw, Mapping):
        raise InputError(
            f"run options must be a mapping of {sorted(RunOptions.model_fields)}, not {type(raw).__name__}"
        )
    try:
        return RunOptions.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid run options: {problems}") from None


def options_of(runtime: Any, config: Mapping[str, Any] | None = None) -> RunOptions:
    """The run's options: the Runtime's context (none, a dict or a RunOptions), else the option fields of the run
    config's `configurable` (the pre-0.6 `config_schema` way; `thread_id` and the like are not options)."""
    context = getattr(runtime, "context", None)
    if isinstance(context, RunOptions):
        return context
    if context is None and config is not None:
        configurable = config.get("configurable") or {}
        context = {k: v for k, v in configurable.items() if k in RunOptions.model_fields} or None
    return parse_options(context)


def option_reasons(options: RunOptions) -> list[str]:
    """`option:<name>=<value>` for each option the run sets: the trace says what differed."""
    return [
        f"option:{name}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in options.set_fields().items()
    ]
