"""The whole labelgate machine on one screen.

START → classify → vote ─auto─────────────────────────────────────→ retrieve → rerank → answer ─→ END
                       └escalate→ extract → rules ─confirmed / provisional──↗                   │
                                                 └before_answer→ review ──↗   provisional: review → END
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from app.core.components import Components, server_components
from graph.options import RunOptions
from graph.recorder import Graph, record_decisions
from graph.routing import after_answer, after_review, after_rules, after_vote
from graph.state import InputState, State
from graph.tracing import traced
from nodes.answer import GenerateAnswer
from nodes.classify import Classify
from nodes.extract import Extract
from nodes.rerank import Rerank
from nodes.retrieve import Retrieve
from nodes.review import Review
from nodes.rules import Rules
from nodes.vote import Vote


def build_graph(c: Components, *, checkpointer: BaseCheckpointSaver[Any] | None = None) -> Graph:
    s, trust = c.settings, c.label_reliability()  # how far the voters' labels may be trusted
    g = StateGraph(State, input_schema=InputState, context_schema=RunOptions)  # per-run options: graph/options.py
    g.add_node("classify", traced(Classify(c.voters, max_query_chars=s.max_query_chars)))
    g.add_node("vote", traced(Vote(c.taxonomy, s.vote)))
    g.add_node("extract", traced(Extract(c.llm, c.taxonomy, c.examples, k=s.fewshot_k)))
    g.add_node("rules", traced(Rules(c.rules, c.taxonomy, c.feedback)))
    g.add_node("review", traced(Review(c.taxonomy, c.feedback)))
    g.add_node("retrieve", traced(Retrieve(c.kb, c.taxonomy, top_k=s.top_k, fetch_k=s.fetch_k, reliability=trust)))
    g.add_node("rerank", traced(Rerank(c.taxonomy, s.rerank, top_k=s.top_k, reliability=trust)))
    g.add_node("answer", traced(GenerateAnswer(c.llm, oos_label=c.taxonomy.oos_label)))
    g.add_edge(START, "classify")
    g.add_edge("classify", "vote")
    g.add_conditional_edges("vote", after_vote, ["retrieve", "extract"])
    g.add_edge("extract", "rules")
    g.add_conditional_edges("rules", after_rules, ["retrieve", "review"])
    g.add_conditional_edges("review", after_review, ["retrieve", END])
    g.add_edge("retrieve", "rerank")
    g.add_edge("rerank", "answer")
    g.add_conditional_edges("answer", after_answer, ["review", END])
    return record_decisions(g.compile(checkpointer=checkpointer, name="labelgate"), c)


async def server_graph() -> Graph:
    """The graph factory named in langgraph.json (`langgraph dev`, Studio, LangGraph Platform): the server brings its
    own persistence; models load once per server process, on the first run, off the event loop."""
    return build_graph(await asyncio.to_thread(server_components))
