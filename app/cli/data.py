"""`labelgate data …`: checks on labelled data (`data audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import print_json, run, settings

data_app = typer.Typer(no_args_is_help=True, help="labelled data: audit for label issues, duplicates, rare labels")


@data_app.command("audit")
def data_audit(
    data: Annotated[
        Path, typer.Option(help="a labelgate data dir (taxonomy.yaml + queries/) or a dataset dir with train.jsonl")
    ],
    out: Annotated[Path | None, typer.Option(help="write the JSON here too")] = None,
    report: Annotated[Path | None, typer.Option(help="write the self-contained HTML table here")] = None,
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds for the voters' probabilities")] = 5,
    min_train: Annotated[int, typer.Option(min=1, help="a label with fewer train rows is reported as rare")] = 10,
    dup_threshold: Annotated[
        float,
        typer.Option(min=0.5, max=1.0, help="voter B embedding cosine at or above which rows are near-duplicates"),
    ] = 0.85,
) -> None:
    """Cross-validated voter probabilities → likely label issues (confident learning, cleanlab); duplicates across
    splits (conflicting labels called out); labels too rare to learn or absent from dev/test."""
    from app.ops.eval.audit import run_audit
    from app.ops.eval.audit_report import audit_html

    def go() -> dict[str, Any]:
        result = run_audit(settings(), data, folds=folds, min_train=min_train, dup_threshold=dup_threshold)
        if report is not None:
            report.write_text(audit_html(result), encoding="utf-8")
        return result

    print_json(run(go), out)
