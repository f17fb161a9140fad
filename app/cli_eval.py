"""`labelgate eval …`: evaluation harnesses on public datasets, writing JSON (and an HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_common import print_json, run, settings
from app.config import TrainMode

eval_app = typer.Typer(no_args_is_help=True, help="evaluation harnesses on labelled datasets (JSON + HTML)")


@eval_app.command("classify")
def eval_classify(
    data: Annotated[Path, typer.Option(help="dataset dir: train.jsonl, optional dev.jsonl|val.jsonl, test.jsonl")],
    oos_label: Annotated[str | None, typer.Option(help="the out-of-scope label, if the data has one")] = None,
    mode: Annotated[
        TrainMode, typer.Option(help="fast: frozen encoders + cached embeddings; lora: voter A fine-tuned with LoRA")
    ] = TrainMode.fast,
    oos_recall: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="OOS threshold: the lowest whose dev OOS recall reaches this")
    ] = 0.7,
    max_train: Annotated[int | None, typer.Option(min=1, help="stratified cap on training rows")] = None,
    out: Annotated[Path | None, typer.Option(help="write the JSON here too")] = None,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
) -> None:
    """Train both voters on DATA, calibrate on dev, score voters and gate on test."""
    from app.eval.classify import run_classify_eval
    from app.eval.report import classify_html

    def go() -> dict[str, Any]:
        result = run_classify_eval(
            settings(), data, mode=mode, oos_label=oos_label, oos_recall=oos_recall, max_train=max_train
        )
        if report is not None:
            report.write_text(classify_html(result), encoding="utf-8")
        return result

    print_json(run(go), out)
