"""LangChain-native surface: the gate as a Runnable, the gated retrieval as a BaseRetriever (both reuse the graph's
own nodes). The compiled graph itself (graph.builder.build_graph) is already a Runnable: invoke/batch/stream/ainvoke."""

from app.service.lc.classifier import Classification, LabelGateClassifier
from app.service.lc.retriever import LabelGateRetriever

__all__ = ["Classification", "LabelGateClassifier", "LabelGateRetriever"]
