"""Evaluation and benchmarks (classification, latency)."""
