"""Pure parts of `labelgate data audit`: text normalisation, stratified folds, cross-split duplicates, label counts."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

SPLITS = ("train", "dev", "test")


def normalise(text: str) -> str:
    """The text as duplicates are compared: NFKC, lower case, without whitespace, punctuation or symbols
    (「屏幕裂了，能修吗？」 == 「屏幕裂了能修吗」)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PZSC")


def stratified_folds(keys: Sequence[str], k: int, seed: int) -> np.ndarray:
    """A fold id in [0, k) per row: rows of each key (e.g. its label set) dealt round-robin after a seeded shuffle,
    starting where the previous key stopped, so every fold gets its share of every key and folds differ in size
    by at most one row."""
    if k < 2:
        raise ValueError("k must be at least 2")
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_key[key].append(i)
    rng = random.Random(seed)
    out = np.zeros(len(keys), dtype=np.int64)
    turn = 0
    for key in sorted(by_key):
        rows = by_key[key]
        rng.shuffle(rows)
        for i in rows:
            out[i] = turn % k
            turn += 1
    return out


def exact_duplicates(
    splits: Sequence[str], texts: Sequence[str], labels: Sequence[Sequence[str]]
) -> list[dict[str, Any]]:
    """Groups of rows whose normalised texts are equal and that lie in more than one split (a leak between train and
    dev/test) or repeat within one split; each with `cross_split` and `conflicting` (label sets differ)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        groups[normalise(text)].append(i)
    found = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        found.append(
            {
                "rows": rows,
                "cross_split": len({splits[i] for i in rows}) > 1,
                "conflicting": len({tuple(sorted(labels[i])) for i in rows}) > 1,
            }
        )
    return sorted(found, key=lambda g: (not g["conflicting"], not g["cross_split"], g["rows"][0]))


def near_duplicates(
    splits: Sequence[str], vectors: np.ndarray, threshold: float, *, skip: Collection[frozenset[int]] = ()
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) of rows in different splits whose L2-normalised vectors have cosine ≥ threshold, best
    first; pairs in `skip` (already exact duplicates) left out. Computed split against split in blocks."""
    by_split: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(splits):
        by_split[name] = np.array([i for i, s in enumerate(splits) if s == name], dtype=np.int64)
    names = list(by_split)
    pairs: list[tuple[int, int, float]] = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            left, right = by_split[names[a]], by_split[names[b]]
            for start in range(0, len(left), 2048):
                block = left[start : start + 2048]
                sims = vectors[block] @ vectors[right].T
                for r, c in zip(*np.nonzero(sims >= threshold), strict=True):
                    i, j = int(block[r]), int(right[c])
                    if frozenset((i, j)) not in skip:
                        pairs.append((i, j, float(sims[r, c])))
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def label_counts(
    splits: Sequence[str], labels: Sequence[Sequence[str]], label_ids: Sequence[str], *, min_train: int
) -> dict[str, Any]:
    """Rows per label and split; labels with fewer than `min_train` train rows ("rare"), and labels absent from a
    split that has rows ({label: [splits]})."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in dict.fromkeys(splits)}
    for split, row in zip(splits, labels, strict=True):
        counts[split].update(set(row))
    table = {label: {split: counts[split][label] for split in counts} for label in label_ids}
    rare = [label for label in label_ids if table[label].get("train", 0) < min_train]
    absent = {
        label: [split for split in counts if split in SPLITS and table[label][split] == 0]
        for label in label_ids
        if any(split in SPLITS and table[label][split] == 0 for split in counts)
    }
    return {"min_train": min_train, "counts": table, "rare": rare, "absent": absent}


def suggested(probs: np.ndarray, columns: Sequence[str], *, multi_label: bool) -> list[str]:
    """What the cross-validated voters would say: every column at p ≥ 0.5 (multi-label), else the most likely."""
    chosen = [columns[int(j)] for j in np.nonzero(probs >= 0.5)[0]] if multi_label else []
    return chosen or [columns[int(np.argmax(probs))]]


def rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {key: round(float(v), 4) for key, v in values.items()}


def summary(issues: list[dict[str, Any]], duplicates: dict[str, Any], rare: dict[str, Any]) -> dict[str, Any]:
    """Counts of the report's findings."""
    by_split: dict[str, int] = {}
    for issue in issues:
        by_split[issue["split"]] = by_split.get(issue["split"], 0) + 1
    exact, near = duplicates["exact"], duplicates["near"]
    return {
        "label_issues": len(issues),
        "label_issues_by_split": by_split,
        "exact_duplicate_groups": len(exact),
        "exact_cross_split": sum(g["cross_split"] for g in exact),
        "exact_conflicting": sum(g["conflicting"] for g in exact),
        "near_cross_split": len(near),
        "near_conflicting": sum(p["conflicting"] for p in near),
        "rare_labels": len(rare["rare"]),
        "labels_absent_from_a_split": len(rare["absent"]),
    }
