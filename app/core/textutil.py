"""Query cleaning at the edges, and Chinese keyword terms for rerank."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from app.core.errors import InputError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # undecodable bytes (surrogateescape) or a broken UTF-16 pair
_STOP = set("的了吗呢啊吧呀是我你他她它们这那有在和与或及就都也还要会能可以怎么什么吗？?，,。.!！、 ：:；;（）()")


def clean_query(text: object, max_chars: int) -> tuple[str, list[str]]:
    """Replace lone surrogates, strip control characters and surrounding space, cap the length; (clean text, flags).
    Empty → InputError."""
    if not isinstance(text, str):
        raise InputError(f"query must be a string, got {type(text).__name__}")
    flags: list[str] = []
    if _SURROGATE.search(text):  # they cannot be encoded as UTF-8: tokenizers and stores would fail on them
        text = _SURROGATE.sub("\ufffd", text)
        flags.append("invalid_characters_replaced")
    cleaned = _CONTROL.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if cleaned != text.strip():
        flags.append("control_chars_stripped")
    if not cleaned:
        raise InputError("query is empty (or only whitespace/control characters)")
    if len(cleaned) > max_chars:
        cleaned = cleaned[:max_chars]
        flags.append(f"query_truncated:{max_chars}")
    return cleaned, flags


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def terms(text: str) -> list[str]:
    """Distinct content words (jieba for Chinese, lower-cased words for Latin), stop words dropped."""
    words = (w.strip().lower() for w in _jieba().lcut(text))
    return list(dict.fromkeys(w for w in words if w and w not in _STOP and not (len(w) == 1 and w in _STOP)))


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Sentence-packed chunks of at most max_chars (a longer single sentence is cut)."""
    sentences = [s for s in re.split(r"(?<=[。！？!?；;\n])", text) if s]  # blank ones too: chunks stay substrings
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:
            chunks.extend([current] if current else [])
            current = ""
            chunks.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if len(current) + len(sentence) > max_chars and current:
            chunks.append(current)
            current = ""
        current += sentence
    if current.strip():
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]


QUERY_CHARS = 48  # a query-like passage: a sentence or two, as long as a user's question


def passages(text: str, max_chars: int = QUERY_CHARS, min_chars: int = 6) -> list[str]:
    """A document cut into query-like passages (sentence-packed, at most max_chars; shorter than min_chars dropped):
    what voters that learnt from whole documents are measured and trained on when no labelled query exists."""
    return [p for p in chunk_text(text, max_chars) if len(p) >= min_chars]
