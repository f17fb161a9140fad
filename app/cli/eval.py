"""`labelgate eval …`: evaluation harnesses on public datasets, writing JSON (and an HTML report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import comma_list, print_json, run, settings
from app.core.config import TrainMode

eval_app = typer.Typer(no_args_is_help=True, help="evaluation harnesses on labelled datasets (JSON + HTML)")


@eval_app.command("classify")
def eval_classify(
    data: Annotated[Path, typer.Option(help="dataset dir: train.jsonl, optional dev.jsonl|val.jsonl, test.jsonl")],
    oos_label: Annotated[str | None, typer.Option(help="the out-of-scope label, if the data has one")] = None,
    mode: Annotated[
        TrainMode,
        typer.Option(
            help="fast: frozen encoders + cached embeddings; full / lora: voter A fine-tuned (all layers / LoRA)"
        ),
    ] = TrainMode.fast,
    oos_recall: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="OOS threshold: the lowest whose dev OOS recall reaches this")
    ] = 0.7,
    max_train: Annotated[int | None, typer.Option(min=1, help="stratified cap on training rows")] = None,
    out: Annotated[Path | None, typer.Option(help="write the JSON here too")] = None,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
) -> None:
    """Train both voters on DATA, calibrate on dev, score voters and gate on test."""
    from app.ops.eval.classify import run_classify_eval
    from app.ops.eval.report import classify_html

    def go() -> dict[str, Any]:
        result = run_classify_eval(
            settings(), data, mode=mode, oos_label=oos_label, oos_recall=oos_recall, max_train=max_train
        )
        if report is not None:
            report.write_text(classify_html(result), encoding="utf-8")
        return result

    print_json(run(go), out)


def _growth(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in comma_list(text))
    except ValueError as exc:
        raise typer.BadParameter(f"growth must be comma-separated numbers like 0,1,3,10, not {text!r}") from exc


@eval_app.command("drift")
def eval_drift(
    data: Annotated[Path, typer.Option(help="docs.jsonl + queries.jsonl, or a labelgate data dir (kb/ inside)")],
    growth: Annotated[str, typer.Option(help="other-label docs added, as multiples of each query's base KB")] = (
        "0,1,3,10"
    ),
    out: Annotated[Path | None, typer.Option(help="write the JSON here too")] = None,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    gold_doc_labels: Annotated[bool, typer.Option(help="filter on the docs' gold labels, not the voters'")] = False,
    level: Annotated[
        str, typer.Option(help="'another category' for growth and purity: coarse labels (after-sales vs sales) or leaf")
    ] = "coarse",
    tune: Annotated[bool, typer.Option(help="tune the rerank weights on a dev third of the queries")] = False,
    mode: Annotated[TrainMode, typer.Option(help="how the voters are trained for the run")] = TrainMode.fast,
    current_voters: Annotated[
        bool, typer.Option(help="use the promoted voters instead of training (labelgate data dirs only)")
    ] = False,
    k: Annotated[int, typer.Option(min=1, help="metrics @k")] = 10,
    fetch_k: Annotated[int, typer.Option(min=1, help="labelgate's candidates per filter stage before rerank")] = 30,
    base_docs: Annotated[int, typer.Option(min=1, help="each query's KB at growth 0 (relevant docs always in)")] = 200,
    train_docs: Annotated[int, typer.Option(min=2, help="held-out docs the voters train on (public datasets)")] = 2000,
    max_queries: Annotated[int | None, typer.Option(min=1, help="evaluate the first N queries only")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 13,
    doc_id_sep: Annotated[
        str | None, typer.Option(help="docs are chunks '<doc><SEP><n>' and 'relevant' names documents: score per doc")
    ] = None,
) -> None:
    """Grow each query's knowledge base with other-label docs; score dense, gated, oracle and labelgate retrieval."""
    from app.ops.eval.drift import run_drift_eval
    from app.ops.eval.drift_options import DriftOptions
    from app.ops.eval.drift_report import drift_html

    options = DriftOptions(
        growth=_growth(growth),
        k=k,
        fetch_k=fetch_k,
        base_docs=base_docs,
        train_docs=train_docs,
        mode=mode.value,
        gold_doc_labels=gold_doc_labels,
        level=level,
        tune=tune,
        current_voters=current_voters,
        max_queries=max_queries,
        seed=seed,
        doc_id_sep=doc_id_sep,
    )

    def go() -> dict[str, Any]:
        result = run_drift_eval(settings(), data, options)
        if report is not None:
            report.write_text(drift_html(result), encoding="utf-8")
        return result

    print_json(run(go), out)


@eval_app.command("answers")
def eval_answers(
    judged: Annotated[
        Path | None, typer.Option("--set", help="judged questions (default: <data_dir>/answers.yaml)")
    ] = None,
    docs: Annotated[
        str, typer.Option(help="graph: the real graph retrieves; judged: the answer node gets the set's own docs")
    ] = "graph",
    limit: Annotated[int | None, typer.Option(min=1, help="the first N questions only (the local LLM is slow)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the JSON here too")] = None,
) -> None:
    """Share of answers that state the decisive facts and cite the doc inline, on a judged question set."""
    from app.core.components import Components
    from app.core.errors import InputError
    from app.ops.eval.answers import load_judged, run_answer_eval

    def go() -> dict[str, Any]:
        if docs not in ("graph", "judged"):
            raise InputError(f"--docs must be graph or judged, not {docs!r}")
        s = settings()
        questions = load_judged(judged or s.data_dir / "answers.yaml")[:limit]

        def progress(row: dict[str, Any]) -> None:  # one line a question on stderr: answers can take minutes
            keys = ("id", "worth_showing", "fact_stated", "cited_inline", "missing_facts")
            typer.echo(json.dumps({key: row[key] for key in keys}, ensure_ascii=False), err=True)

        return run_answer_eval(Components.load(s), questions, docs=docs, progress=progress)  # type: ignore[arg-type]

    print_json(run(go), out)
