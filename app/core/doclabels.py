"""Doc labels with a confidence: what `labelgate index` stores for a doc its author did not label. Pure functions.

A doc is labelled as a whole, not chunk by chunk: each voter's chunk probabilities are averaged over the doc's chunks
(a long document is not labelled with every topic one of its paragraphs touches), then the two voters' doc-level
views are combined. Agreement decides how sure the labels are:

- both voters accept the same labels and separate them clearly (the query vote's `auto`): those labels, confidence
  = their weakest probability, both voters averaged;
- otherwise the labels the voters' mean probability puts at 0.5 or above (else its single most likely leaf), with
  that probability halved for every voter that does not accept exactly those leaves — disagreement is what makes a
  doc label unsure, and unsure doc labels never push a doc down in the rerank (app/core/softgate.py).

Rule hits on the doc's text (keyword rules) that name one of the chosen leaves confirm them: confidence 1 - (1 - c)/2.
The LLM, asked at index time about docs the voters are unsure of (app/core/llm_doclabels.py), is a third opinion
(`with_llm`): it confirms, it sides with one of two disagreeing voters (two of three decide), or it disagrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.core.decision import VoterOutput, vote
from app.core.taxonomy import Taxonomy


@dataclass(frozen=True)
class DocLabels:
    labels: list[str]  # expanded with coarse parents; [] = none
    confidence: float  # in [0, 1]
    agreed: bool  # both voters accept exactly these labels
    reasons: list[str] = field(default_factory=list)


def titled(title: str, chunks: Sequence[str]) -> list[str]:
    """The texts the voters label a doc by: each chunk under the doc's title. A title names the topic a chunk's
    sentences only imply (demo, 4-fold cross-fitted fast voters: exact doc labels 0.653 from the chunks alone, 0.685
    under the title)."""
    return [f"{title}\n{chunk}" if title.strip() else chunk for chunk in chunks]


def merge_chunks(chunks: Sequence[VoterOutput]) -> VoterOutput:
    """One voter's view of a doc: its chunk probabilities averaged (chunks: that voter's outputs, one per chunk)."""
    if not chunks:
        raise ValueError("a doc needs at least one chunk")
    labels = list(chunks[0].probs)
    probs = {x: sum(c.probs.get(x, 0.0) for c in chunks) / len(chunks) for x in labels}
    return VoterOutput(chunks[0].name, probs, chunks[0].thresholds, chunks[0].version)


def mean_leaves(outputs: Sequence[VoterOutput], taxonomy: Taxonomy) -> list[str]:
    """Leaves the voters' mean probability puts at ≥ 0.5, else the single most likely leaf."""
    leaves = list(taxonomy.leaf_ids)
    mean = {x: sum(o.probs.get(x, 0.0) for o in outputs) / len(outputs) for x in leaves}
    chosen = [x for x in leaves if mean[x] >= 0.5]
    return chosen or [max(leaves, key=lambda x: (mean[x], -leaves.index(x)))]


def label_doc(
    outputs: Sequence[VoterOutput],
    taxonomy: Taxonomy,
    *,
    min_margin: float,
    min_fine_agreement: float,
    rule_labels: Sequence[str] = (),
    llm_labels: Sequence[str] | None = None,
) -> DocLabels:
    """The doc's labels and how sure they are, from the two voters' doc-level views (and rule hits, and the LLM's
    labels when it was asked)."""
    if len(outputs) != 2:
        raise ValueError("doc labels need the two voters' outputs")
    a, b = outputs
    result = vote(a, b, taxonomy, min_margin=min_margin, min_fine_agreement=min_fine_agreement)
    if result.decision == "auto" and result.labels:
        labels, confidence, agreed, reasons = result.labels, result.confidence, True, ["agree"]
    else:
        leaves = mean_leaves(outputs, taxonomy)
        labels = taxonomy.expand(leaves)
        mean = min(sum(o.probs.get(x, 0.0) for o in outputs) / 2 for x in leaves)
        dissent = sum(set(taxonomy.fine_only(taxonomy.expand(o.accepted))) != set(leaves) for o in outputs)
        confidence, agreed, reasons = mean / (2**dissent), False, list(result.reasons)
    if llm_labels:
        labels, confidence, reasons = with_llm(outputs, taxonomy, labels, confidence, agreed, reasons, llm_labels)
    ruled = set(taxonomy.fine_only(taxonomy.expand([x for x in rule_labels if x in taxonomy])))
    if ruled & set(taxonomy.fine_only(labels)):
        confidence, reasons = 1.0 - (1.0 - confidence) / 2, [*reasons, "rule_confirms"]
    return DocLabels(labels, round(min(1.0, max(0.0, confidence)), 6), agreed, reasons)


def with_llm(
    outputs: Sequence[VoterOutput],
    taxonomy: Taxonomy,
    labels: list[str],
    confidence: float,
    agreed: bool,
    reasons: list[str],
    llm_labels: Sequence[str],
) -> tuple[list[str], float, list[str]]:
    """The LLM as a third opinion: the same leaves confirm them (confidence 1 - (1 - c)/2); when the voters disagree
    and it names exactly what one of them accepts, two of three decide (that voter's labels, confidence of one
    dissent, confirmed); any other answer is a disagreement (confidence halved)."""
    llm = set(taxonomy.fine_only(taxonomy.expand([x for x in llm_labels if x in taxonomy])))
    if not llm:
        return labels, confidence, reasons
    if llm == set(taxonomy.fine_only(labels)):
        return labels, 1.0 - (1.0 - confidence) / 2, [*reasons, "llm_confirms"]
    sided = [o.name for o in outputs if set(taxonomy.fine_only(taxonomy.expand(o.accepted))) == llm]
    if not agreed and sided:
        mean = min(sum(o.probs.get(x, 0.0) for o in outputs) / len(outputs) for x in llm)
        return (
            taxonomy.expand(sorted(llm, key=taxonomy.index)),
            1.0 - (1.0 - mean / 2) / 2,
            [
                *reasons,
                f"llm_sides_with:{sided[0]}",
            ],
        )
    return labels, confidence / 2, [*reasons, "llm_disagrees"]
