"""Paraphrase-style augmentation of rare labels for voter B (deterministic, rule-based, no model needed)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from app.core.data import Example

SYNONYMS: dict[str, tuple[str, ...]] = {
    "手机": ("机子", "手机", "新机"),
    "屏幕": ("屏", "屏幕", "显示屏"),
    "保修": ("质保", "保修", "包修"),
    "多少钱": ("什么价", "多少钱", "价格多少"),
    "怎么办": ("咋办", "怎么弄", "怎么处理"),
    "可以": ("能", "可不可以", "能不能"),
    "电池": ("电池", "电板"),
    "快递": ("快递", "物流"),
    "客服": ("客服", "人工"),
    "优惠": ("优惠", "折扣", "便宜"),
    "什么时候": ("啥时候", "几时", "什么时候"),
}
PREFIXES = ("", "你好，", "请问", "在吗？", "急！", "麻烦问下，")
SUFFIXES = ("", "？", "谢谢", "，急", "啊", "呢")
FILLERS = "了吗呢啊吧的"


def paraphrase(text: str, rng: random.Random) -> str:
    """One noisy rewording: synonym swaps, a dropped filler character, a colloquial prefix/suffix."""
    out = text
    for word, options in SYNONYMS.items():
        if word in out and rng.random() < 0.6:
            out = out.replace(word, rng.choice(options), 1)
    fillers = [i for i, ch in enumerate(out) if ch in FILLERS]
    if fillers and rng.random() < 0.5:
        i = rng.choice(fillers)
        out = out[:i] + out[i + 1 :]
    return (rng.choice(PREFIXES) + out.strip("？?。！! ") + rng.choice(SUFFIXES)).strip() or text


def augment_rare(examples: Sequence[Example], *, below: int, copies: int = 2, seed: int = 0) -> list[Example]:
    """The examples plus `copies` paraphrases of every example carrying a label seen fewer than `below` times."""
    counts = Counter(label for ex in examples for label in ex.labels)
    rare = {label for label, n in counts.items() if n < below}
    rng = random.Random(seed)
    extra = []
    seen = {ex.text for ex in examples}
    for ex in examples:
        if rare & set(ex.labels):
            for _ in range(copies):
                text = paraphrase(ex.text, rng)
                if text not in seen:
                    seen.add(text)
                    extra.append(Example(text, ex.labels))
    return list(examples) + extra
