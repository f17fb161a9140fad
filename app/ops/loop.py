"""`labelgate demo --loop`: one feedback round of the seed's loop, measured before and after.

Queries the voters escalate go through the real graph (LLM extraction + rules; the rest pause for review), the demo's
reviewer resolves the pauses with the labels in data/loop.yaml, `retrain` trains new voters on training data + the
feedback store and promotes them only through the gate, and held-out probes of the same kinds are asked again.
Everything happens in a scratch workspace (<home>/loop): your voters, feedback and taxonomy are left alone.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings
from app.core.data import DemoData, Example
from app.core.errors import DataError, ModelNotBuiltError
from app.core.fileio import read_yaml
from app.core.llm import resolve_base_url
from app.core.taxonomy import Taxonomy
from app.core.voters.store import current_version, set_current


@dataclass(frozen=True)
class Family:
    """Queries of one kind: `reviewed` go through the loop, `probes` are asked before and after (labels as written)."""

    name: str
    reviewed: tuple[Example, ...]
    probes: tuple[Example, ...]


@dataclass(frozen=True)
class LoopPlan:
    reviewer: str
    new_labels: tuple[dict[str, Any], ...]
    families: tuple[Family, ...]

    @classmethod
    def load(cls, path: Path) -> LoopPlan:
        doc = read_yaml(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("families"), list) or not doc["families"]:
            raise DataError(f"{path}: expected a mapping with a non-empty 'families' list")

        def cases(entry: dict[str, Any], key: str) -> tuple[Example, ...]:
            where = f"{path}:{entry.get('__line__', '?')}"
            rows = entry.get(key)
            if not isinstance(rows, list) or not rows:
                raise DataError(f"{where}: family needs a non-empty '{key}' list")
            out = []
            for row in rows:
                ok = isinstance(row, dict) and isinstance(row.get("text"), str) and row["text"].strip()
                if not ok or not isinstance(row.get("labels"), list) or not row["labels"]:
                    raise DataError(
                        f"{path}:{row.get('__line__', '?') if isinstance(row, dict) else '?'}: "
                        "each case needs 'text' and a non-empty 'labels' list"
                    )
                out.append(Example(row["text"].strip(), tuple(str(x) for x in row["labels"])))
            return tuple(out)

        families = tuple(
            Family(str(f.get("name", "")), cases(f, "reviewed"), cases(f, "probes"))
            for f in doc["families"]
            if isinstance(f, dict)
        )
        new_labels = tuple({k: v for k, v in label.items() if k != "__line__"} for label in doc.get("new_labels") or [])
        return cls(str(doc.get("reviewer") or "demo-reviewer"), new_labels, families)


def prepare_workspace(settings: Settings, plan: LoopPlan) -> Settings:
    """A fresh copy of the data dir (taxonomy + the plan's new labels) and of the current voters under <home>/loop."""
    root = settings.home / "loop"
    shutil.rmtree(root, ignore_errors=True)
    data_dir = root / "data"
    shutil.copytree(settings.data_dir, data_dir)
    taxonomy_file = DemoData(data_dir).taxonomy
    doc = yaml.safe_load(taxonomy_file.read_text(encoding="utf-8"))
    doc["labels"] = [*doc["labels"], *plan.new_labels]
    taxonomy_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    taxonomy = Taxonomy.load(taxonomy_file)  # validates the new labels
    for family in plan.families:
        for case in (*family.reviewed, *family.probes):
            _, unknown = taxonomy.split_known(case.labels)
            if unknown:
                raise DataError(f"loop case {case.text!r}: labels {unknown} are not in the taxonomy")
    for name in ("A", "B"):  # only the current versions: each one carries a few hundred MB of weights
        version = current_version(settings.voters_dir, name)
        if version is None:
            raise ModelNotBuiltError(f"voter {name} not trained in {settings.voters_dir}: run `labelgate train`")
        shutil.copytree(settings.voters_dir / name / version, root / "home" / "voters" / name / version)
        set_current(root / "home" / "voters", name, version)
    # the scratch home must not start a second local LLM server: reuse the one the real home runs; its checkpoints
    # and feedback stay in the scratch home, never in the shared database
    base_url = resolve_base_url(settings)
    update = {"data_dir": data_dir, "home": root / "home", "feedback_url": None, "llm_base_url": base_url}
    return settings.model_copy(update=update | {"llm_local": False, "database_url": None})


def _probe(assistant: Any, cases: tuple[Example, ...]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        answer = assistant.ask(case.text)
        out.append({"decision": answer.decision, "labels": answer.labels, "label_source": answer.label_source})
    return out


def _escalation_rate(rows: list[dict[str, Any]]) -> float:
    return round(sum(row["decision"] != "auto" for row in rows) / max(len(rows), 1), 4)


def _learned(voters: list[Any], reviewed: list[dict[str, Any]], taxonomy: Taxonomy) -> float | None:
    """retrain's feedback_learned over the queries the demo's reviewer labelled."""
    from app.ops.training.evaluate import feedback_learned

    cases = [Example(row["query"], tuple(taxonomy.expand(row["reviewed"]))) for row in reviewed if row["reviewed"]]
    return feedback_learned(voters, cases, taxonomy)


def run_loop(settings: Settings, plan: LoopPlan) -> dict[str, Any]:
    from app.core.components import Components
    from app.core.kb import make_client
    from app.core.voters.store import load_pair
    from app.ops.training.retrain import retrain
    from app.service.api import Assistant

    started = time.perf_counter()
    scratch = prepare_workspace(settings, plan)
    client = make_client(settings)  # the real knowledge-base index, read only
    assistant = Assistant(Components.load(scratch, client=client))
    probes = [case for family in plan.families for case in family.probes]
    before = _probe(assistant, tuple(probes))

    reviewed = []
    for family in plan.families:
        for case in family.reviewed:
            answer = assistant.ask(case.text)
            entry = {
                "query": case.text,
                "decision": answer.decision,
                "labels": answer.labels,
                "label_source": answer.label_source,
                "reviewed": None,
            }
            if answer.pending_review:
                done = assistant.resume(answer.thread_id, labels=list(case.labels), reviewer=plan.reviewer)
                entry["reviewed"] = done.labels
            reviewed.append(entry)
    learned_before = _learned(assistant.components.voters, reviewed, assistant.components.taxonomy)
    feedback = assistant.components.feedback
    sources = Counter(row.source for row in feedback.rows()) if feedback else Counter()

    retrain_started = time.perf_counter()
    outcome = retrain(scratch)
    retrain_seconds = time.perf_counter() - retrain_started
    components = Components.load(scratch, client=client)
    after = _probe(Assistant(components), tuple(probes))
    candidate_after, candidate_voters = None, components.voters
    if not outcome["promoted"]:  # what the refused candidate would have done, to show what the gate traded off
        version = outcome["candidate"]["version"]
        voters = load_pair(
            scratch.voters_dir, version=version, threads=scratch.threads, runtime=scratch.voter_a_runtime
        )
        candidate_after = _probe(Assistant(dataclasses.replace(components, voters=voters)), tuple(probes))
        candidate_voters = voters

    taxonomy = components.taxonomy
    rows = [
        {"query": case.text, "expected": taxonomy.expand(case.labels), "before": b, "after": a}
        for case, b, a in zip(probes, before, after, strict=True)
    ]
    for row, c in zip(rows, candidate_after or [], strict=False):
        row["candidate_after"] = c
    return {
        "query": rows[0]["query"],
        "before": rows[0]["before"],
        "after": rows[0]["after"],
        "probes": rows,
        "escalation_before": _escalation_rate(before),
        "escalation_after": _escalation_rate(after),
        "probe_exact_before": _exact(rows, "before"),
        "probe_exact_after": _exact(rows, "after"),
        "candidate_escalation_after": _escalation_rate(candidate_after) if candidate_after else None,
        "reviewed": reviewed,
        "feedback_learned_before": learned_before,
        "feedback_learned_after": _learned(candidate_voters, reviewed, components.taxonomy),
        "feedback_rows": dict(sources),
        "new_labels": [label["id"] for label in plan.new_labels],
        "retrain": outcome | {"seconds": round(retrain_seconds, 1)},
        "workspace": str(scratch.home.parent),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _exact(rows: list[dict[str, Any]], when: str) -> float:
    hits = sum(row[when]["decision"] == "auto" and set(row[when]["labels"]) == set(row["expected"]) for row in rows)
    return round(hits / max(len(rows), 1), 4)


def format_loop(result: dict[str, Any]) -> str:
    r = result["retrain"]
    lines = [f"Feedback round in {result['workspace']} (your own voters and feedback are untouched)."]
    if result["new_labels"]:
        lines.append(f"New labels added to the copied taxonomy: {', '.join(result['new_labels'])}")
    lines.append("1. Reviewed queries (voters → LLM + rules → review):")
    for row in result["reviewed"]:
        how = f"reviewed → {', '.join(row['reviewed'])}" if row["reviewed"] else f"[{row['label_source']}]"
        lines.append(f"   {row['query']}  {row['decision']}: {', '.join(row['labels']) or '-'} {how}")
    lines.append(f"   feedback rows by source: {result['feedback_rows']}")
    if result["feedback_learned_after"] is not None:
        lines.append(
            "   reviewed queries both voters label exactly as reviewed (the new version, or the refused candidate): "
            f"{result['feedback_learned_before']:.2f} → {result['feedback_learned_after']:.2f}"
        )
    lines.append(
        f"2. Retrain ({r['seconds']} s, {r['feedback_rows']} feedback rows), promotion gate on the test split:"
    )
    lines += [f"   {line}" for line in r["comparison"]]
    lines.append(f"   promoted: {r['promoted']} (current version: {r['now_current']})")
    lines.append("3. Held-out probes of the same kinds, before → after:")
    for row in result["probes"]:
        b, a = row["before"], row["after"]
        lines.append(
            f"   {row['query']}\n      before {b['decision']}: {', '.join(b['labels']) or '-'}"
            f"   after {a['decision']}: {', '.join(a['labels']) or '-'}   (expected {', '.join(row['expected'])})"
        )
    if result["candidate_escalation_after"] is not None:
        lines.append("   The gate refused the candidate; it would have decided them as:")
        lines += [
            f"   {row['query']}: {row['candidate_after']['decision']}: {', '.join(row['candidate_after']['labels'])}"
            for row in result["probes"]
        ]
        lines.append(f"   candidate escalation rate: {result['candidate_escalation_after']:.2f}")
    lines.append(
        f"Escalation rate on the probes: {result['escalation_before']:.2f} → {result['escalation_after']:.2f}; "
        f"automatic and exactly right: {result['probe_exact_before']:.2f} → {result['probe_exact_after']:.2f}"
    )
    return "\n".join(lines)
