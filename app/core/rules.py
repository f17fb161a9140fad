"""Keyword/regex rules from rules.yaml: they may add labels, never remove them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import DataError
from app.core.fileio import read_yaml
from app.core.taxonomy import Taxonomy


@dataclass(frozen=True)
class Rule:
    id: str
    labels: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def match(self, text: str) -> str | None:
        """The matched keyword or regex span, or None."""
        lowered = text.lower()
        for keyword in self.keywords:
            if keyword.lower() in lowered:
                return keyword
        if self.pattern is not None:
            found = self.pattern.search(text)
            if found:
                return found.group(0)
        return None


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    labels: tuple[str, ...]
    matched: str

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule_id, "labels": list(self.labels), "matched": self.matched}


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]

    def hits(self, text: str) -> list[RuleHit]:
        found = []
        for rule in self.rules:
            matched = rule.match(text)
            if matched is not None:
                found.append(RuleHit(rule.id, rule.labels, matched))
        return found

    @classmethod
    def load(cls, path: Path, taxonomy: Taxonomy) -> RuleSet:
        doc = read_yaml(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
            raise DataError(f"{path}: expected a mapping with a 'rules' list")
        rules: list[Rule] = []
        seen: set[str] = set()
        for entry in doc["rules"]:
            line = entry.get("__line__", "?") if isinstance(entry, dict) else "?"
            where = f"{path}:{line}"
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise DataError(f"{where}: each rule needs a string 'id'")
            rule_id = entry["id"]
            if rule_id in seen:
                raise DataError(f"{where}: duplicate rule id {rule_id!r}")
            seen.add(rule_id)
            labels = entry.get("labels")
            if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
                raise DataError(f"{where}: rule {rule_id!r} needs a non-empty 'labels' list")
            known, unknown = taxonomy.split_known(labels)
            if unknown:
                raise DataError(f"{where}: rule {rule_id!r} names unknown labels {unknown}")
            keywords = entry.get("keywords", [])
            if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
                raise DataError(f"{where}: rule {rule_id!r}: 'keywords' must be a list of non-empty strings")
            pattern = None
            if entry.get("regex") is not None:
                try:
                    pattern = re.compile(str(entry["regex"]), re.IGNORECASE)
                except re.error as exc:
                    raise DataError(f"{where}: rule {rule_id!r}: invalid regex: {exc}") from exc
            if not keywords and pattern is None:
                raise DataError(f"{where}: rule {rule_id!r} needs 'keywords' or 'regex'")
            rules.append(Rule(rule_id, tuple(taxonomy.expand(known)), tuple(keywords), pattern))
        return cls(tuple(rules))
