"""Evaluation and benchmarks (classification, latency)."""

from enum import StrEnum


class Mode(StrEnum):
    """How `labelgate eval classify` trains voter A (voter B is a head on its frozen encoder either way)."""

    fast = "fast"  # a head on frozen e5 embeddings, cached on disk
    lora = "lora"  # e5 fine-tuned with LoRA, as `labelgate train` does
