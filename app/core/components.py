"""Everything the graph's nodes need, loaded once (the explicit warm-up): taxonomy, rules, voters, KB, LLM and the
few-shot example store."""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from app.core.config import Settings
from app.core.data import DemoData
from app.core.decisionlog import DecisionLog
from app.core.embedder import load_embedder, open_kb, shared_encoders
from app.core.errors import ModelNotBuiltError
from app.core.feedback import FeedbackStore
from app.core.fewshot import ExampleStore
from app.core.kb import KnowledgeBase, make_client
from app.core.llm import make_chat_model
from app.core.rules import RuleSet
from app.core.taxonomy import Taxonomy
from app.core.voters.base import Voter

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    taxonomy: Taxonomy
    rules: RuleSet
    voters: list[Voter]
    kb: KnowledgeBase
    llm: BaseChatModel | None
    feedback: FeedbackStore | None = None
    decisions: DecisionLog | None = None  # the decision log every graph run is recorded in (None: off)
    examples: ExampleStore | None = None  # reviewed examples for the extractor's prompt (None: zero-shot)

    def label_reliability(self) -> dict[str, float]:
        """How far the voters' labels may be trusted, as measured at training: "voters" (meta `gate_reliability`: the
        exact accuracy of their automatic decisions on dev) and "provisional" (meta `provisional_reliability`: how often
        an escalation's candidates' coarse labels, the filter of an answer given before its review, are all right).
        A source left unmeasured (voters trained before it existed) is fully trusted."""
        found: dict[str, float] = {}
        for source, key in (("voters", "gate_reliability"), ("provisional", "provisional_reliability")):
            measured = [v.meta.get(key) for v in self.voters]
            numbers = [float(x) for x in measured if isinstance(x, int | float)]
            if numbers and len(numbers) == len(measured):
                found[source] = min(numbers)
        return found

    @classmethod
    def load(cls, settings: Settings, *, client: Any = None) -> Components:
        """Load models and open stores; errors name the command that builds what is missing."""
        from app.core.voters.store import load_pair

        client = client or make_client(settings)  # an unreachable Chroma server fails before minutes of model loading
        data = DemoData(settings.data_dir)
        taxonomy = Taxonomy.load(data.taxonomy)
        shared = shared_encoders(settings)
        voters = load_pair(
            settings.voters_dir, threads=settings.threads, runtime=settings.voter_a_runtime, encoders=shared
        )
        for voter in voters:
            if voter.labels != taxonomy.ids:
                log.warning(
                    "voter %s was trained on other labels than taxonomy.yaml: run `labelgate train`", voter.name
                )
        kb = open_kb(settings, client, _load_embedder(settings, shared))
        if kb.count() == 0:
            log.warning(
                "knowledge base %r is empty: answers offer a human until `labelgate index`", settings.collection
            )
        torch = sys.modules.get("torch")  # loaded only by a torch runtime (voter A or embedder on torch)
        if torch is not None:
            torch.set_num_threads(settings.threads)
        rules = RuleSet.load(data.rules, taxonomy)
        feedback = FeedbackStore(settings.feedback_db_url)
        decisions = DecisionLog(settings.decision_log_db_url) if settings.decision_log else None
        llm = make_chat_model(settings)
        examples = load_examples_store(settings, data, taxonomy, kb, feedback)
        if llm is not None and examples is not None:
            examples.warm()  # embedded now (or read from its cache), not on the first escalation
        return cls(settings, taxonomy, rules, voters, kb, llm, feedback, decisions, examples)


def load_examples_store(
    settings: Settings, data: DemoData, taxonomy: Taxonomy, kb: KnowledgeBase, feedback: FeedbackStore | None
) -> ExampleStore | None:
    """The train split + confirmed feedback, embedded by the retrieval embedder (None when fewshot_k is 0)."""
    from app.core.data import load_examples

    if settings.fewshot_k <= 0:
        return None
    train = data.split("train")
    base = load_examples(train, taxonomy) if train.is_file() else []
    return ExampleStore(
        kb.embedder,
        taxonomy,
        base=base,
        feedback=feedback,
        prefix=kb.query_prefix,
        cache_dir=settings.home / "cache" / "fewshot",
    )


def _load_embedder(settings: Settings, shared: dict[str, Any]) -> Any:
    """The retrieval embedder; missing or damaged model files are a ModelNotBuiltError naming the command."""
    from safetensors import SafetensorError

    try:
        return load_embedder(settings, shared)
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        raise ModelNotBuiltError(
            f"retrieval embedder {settings.embedder_id} cannot be loaded ({reason}): run `labelgate models build`"
        ) from exc


@functools.cache
def server_components() -> Components:
    """Components for a LangGraph server process (`langgraph dev`): settings from env/file, loaded once per process
    however often the server calls the graph factory and whichever way it imported the factory's module."""
    from app.core.config import load_settings

    return Components.load(load_settings())
