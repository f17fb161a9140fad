"""Taxonomy: the business labels (coarse -> fine), validation, and the widening order of filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.core.errors import DataError
from app.core.fileio import read_yaml

ReviewMode = Literal["before_answer", "after_answer"]
REVIEW_MODES: tuple[str, ...] = ("before_answer", "after_answer")


@dataclass(frozen=True)
class Label:
    id: str
    parent: str | None = None
    description: str = ""
    weight: float = 1.0
    weight_b: float = 1.0
    review: ReviewMode = "after_answer"

    @property
    def is_coarse(self) -> bool:
        return self.parent is None


@dataclass(frozen=True)
class Taxonomy:
    labels: tuple[Label, ...]
    oos_label: str | None = None
    version: int = 1
    _by_id: dict[str, Label] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Label] = {}
        for label in self.labels:
            if label.id in by_id:
                raise DataError(f"taxonomy: duplicate label id {label.id!r}")
            by_id[label.id] = label
        for label in self.labels:
            if label.parent is not None:
                parent = by_id.get(label.parent)
                if parent is None:
                    raise DataError(f"taxonomy: label {label.id!r} has unknown parent {label.parent!r}")
                if parent.parent is not None:
                    raise DataError(f"taxonomy: parent {label.parent!r} of {label.id!r} must be a coarse label")
        if self.oos_label is not None and self.oos_label not in by_id:
            raise DataError(f"taxonomy: oos_label {self.oos_label!r} is not a label")
        if not self.labels:
            raise DataError("taxonomy: no labels")
        object.__setattr__(self, "_by_id", by_id)

    @property
    def ids(self) -> list[str]:
        return [label.id for label in self.labels]

    @property
    def coarse_ids(self) -> list[str]:
        return [label.id for label in self.labels if label.is_coarse]

    @property
    def fine_ids(self) -> list[str]:
        return [label.id for label in self.labels if not label.is_coarse]

    @property
    def leaf_ids(self) -> list[str]:
        """Labels no other label hangs under (in a flat taxonomy: every label)."""
        parents = {self.coarse_of(label) for label in self.fine_ids}
        return [label for label in self.ids if label not in parents]

    def __contains__(self, label_id: object) -> bool:
        return label_id in self._by_id

    def __getitem__(self, label_id: str) -> Label:
        return self._by_id[label_id]

    def index(self, label_id: str) -> int:
        return self.ids.index(label_id)

    def coarse_of(self, label_id: str) -> str:
        label = self._by_id[label_id]
        return label.parent or label.id

    def split_known(self, labels: Iterable[str]) -> tuple[list[str], list[str]]:
        """(known, unknown) preserving order and dropping duplicates."""
        known: list[str] = []
        unknown: list[str] = []
        for label in labels:
            target = known if label in self._by_id else unknown
            if label not in target:
                target.append(label)
        return known, unknown

    def expand(self, labels: Iterable[str]) -> list[str]:
        """Known labels plus their coarse parents, in taxonomy order."""
        wanted = set()
        for label in labels:
            if label in self._by_id:
                wanted.add(label)
                wanted.add(self.coarse_of(label))
        return [label_id for label_id in self.ids if label_id in wanted]

    def fine_only(self, labels: Iterable[str]) -> list[str]:
        """Fine labels, plus coarse labels that have none of their children listed (a coarse-only meaning)."""
        labels = list(labels)
        covered = {self.coarse_of(label) for label in labels if label in self._by_id and not self[label].is_coarse}
        return [label for label in self.ids if label in labels and (not self[label].is_coarse or label not in covered)]

    def review_mode(self, labels: Sequence[str]) -> ReviewMode:
        """before_answer if any label (or its parent) demands it."""
        for label in labels:
            if label in self._by_id and "before_answer" in (self[label].review, self[self.coarse_of(label)].review):
                return "before_answer"
        return "after_answer"

    @classmethod
    def load(cls, path: Path) -> Taxonomy:
        doc = read_yaml(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("labels"), list):
            raise DataError(f"{path}: expected a mapping with a 'labels' list")
        labels = []
        allowed = {"id", "parent", "description", "weight", "weight_b", "review", "__line__"}
        for entry in doc["labels"]:
            line = entry.get("__line__", "?") if isinstance(entry, dict) else "?"
            where = f"{path}:{line}"
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"].strip():
                raise DataError(f"{where}: each label needs a non-empty string 'id'")
            unknown_keys = set(entry) - allowed
            if unknown_keys:
                raise DataError(f"{where}: unknown keys {sorted(unknown_keys)} in label {entry['id']!r}")
            for key in ("weight", "weight_b"):
                value = entry.get(key, 1.0)
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise DataError(f"{where}: {key} of {entry['id']!r} must be a positive number, got {value!r}")
            review = entry.get("review", "after_answer")
            if review not in REVIEW_MODES:
                raise DataError(f"{where}: review of {entry['id']!r} must be one of {REVIEW_MODES}, got {review!r}")
            labels.append(
                Label(
                    id=entry["id"].strip(),
                    parent=entry.get("parent"),
                    description=str(entry.get("description", "")),
                    weight=float(entry.get("weight", 1.0)),
                    weight_b=float(entry.get("weight_b", 1.0)),
                    review=review,
                )
            )
        try:
            return cls(labels=tuple(labels), oos_label=doc.get("oos_label"), version=int(doc.get("version", 1)))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc


def label_table(taxonomy: Taxonomy) -> str:
    """One line per label for an LLM prompt: id, its coarse parent, its description."""
    lines = []
    for label in taxonomy.labels:
        parent = f"（属于{label.parent}）" if label.parent else ""
        lines.append(f"- {label.id}{parent}：{label.description}")
    return "\n".join(lines)
