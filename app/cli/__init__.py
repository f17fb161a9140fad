"""Thin CLI: each command parses arguments and calls one library function. Errors exit 2 with a clear message."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import STATE as _state
from app.cli.common import assistant as _assistant
from app.cli.common import comma_list as _comma_list
from app.cli.common import option_pairs
from app.cli.common import print_json as _print_json
from app.cli.common import run as _run
from app.cli.common import settings as _settings
from app.cli.data import data_app
from app.cli.eval import eval_app
from app.cli.monitor import report_command
from app.cli.ops import bench_app, feedback_app, llm_app, register
from app.cli.soak import register as register_soak

app = typer.Typer(add_completion=False, no_args_is_help=True, help="labelgate: label-gated RAG against semantic drift")
models_app = typer.Typer(no_args_is_help=True, help="offline models")
review_app = typer.Typer(no_args_is_help=True, help="pending human reviews")
app.add_typer(models_app, name="models")
app.add_typer(review_app, name="review")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(llm_app, name="llm")
app.add_typer(feedback_app, name="feedback")
app.add_typer(data_app, name="data")
register(app, models_app)
register_soak(app)
app.command("report")(report_command)


@app.callback()
def _main(
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # weight-loading bars on every `ask` are noise; training keeps its own progress bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _state["config"] = config


@models_app.command("build")
def models_build(
    force: Annotated[bool, typer.Option(help="rebuild even when up to date")] = False,
    llm: Annotated[bool, typer.Option(help="also assemble the local LLM's GGUF")] = True,
    encoder: Annotated[
        str | None, typer.Option(help="build only this optional encoder and its ONNX export: embeddinggemma-300m")
    ] = None,
) -> None:
    """Build the offline encoder checkpoint, its int8 retrieval export (and the local LLM's GGUF) into the model cache
    (idempotent)."""
    from app.core.embedder import build_encoder, build_int8
    from app.core.llm_local import build_gguf
    from app.core.models import build_models

    def go() -> dict[str, Path]:
        settings = _settings()
        if encoder:
            return build_encoder(settings, encoder, force=force)
        built = build_models(settings.model_dir, force=force)
        if settings.embedder_runtime == "onnx-int8":
            built["embedder-int8"] = build_int8(settings)
        return built | ({"llm": build_gguf(settings.model_dir)} if llm else {})

    paths = _run(go)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@app.command()
def train(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Train voter A (LoRA) and voter B (frozen USE + head), calibrate on dev, score on test, save a new version."""
    from app.ops.training.train import train_voters

    report = _run(lambda: train_voters(_settings()))
    if as_json:
        _print_json(report)
        return
    test = report["test"]
    typer.echo(
        f"version {report['version']}  (train seconds: A {report['train_seconds']['A']}, "
        f"B {report['train_seconds']['B']})"
    )
    for name, m in test["voters"].items():
        typer.echo(f"voter {name}: accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    typer.echo(
        f"agreement {test['agreement']:.3f}  auto coverage {test['auto_coverage']:.3f}  "
        f"auto precision {test['auto_precision']:.3f}  (test rows {test['rows']})"
    )


@app.command()
def index(docs: Annotated[Path | None, typer.Option(help="docs.jsonl (default: data/kb/docs.jsonl)")] = None) -> None:
    """Index the knowledge base into Chroma (idempotent: unchanged chunks are skipped)."""
    from app.core.indexing import index_knowledge_base

    _print_json(_run(lambda: index_knowledge_base(_settings(), docs_path=docs)))


DOC_KEYS = ("doc_id", "chunk_id", "score", "title", "labels", "stage", "scores")  # of each doc in `ask --json`


@app.command()
def ask(
    query: str,
    thread: Annotated[str | None, typer.Option(help="thread id (default: new)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="a per-run option NAME=VALUE (graph/options.py), e.g. -o top_k=5 -o llm=false"
        ),
    ] = None,
) -> None:
    """Ask one question through the graph."""
    options = _run(lambda: option_pairs(option or []))
    answer = _run(lambda: _assistant().ask(query, thread_id=thread, options=options))
    out = answer.summary() | {
        "filter_used": answer.filter_used,
        "widened": answer.widened,
        "docs": [{k: d[k] for k in DOC_KEYS} for d in answer.docs],
        "review": answer.review if answer.pending_review else {},
    }
    if as_json:
        _print_json(out)
        return
    typer.echo(f"labels: {', '.join(answer.labels) or '-'}  decision: {answer.decision}  route: {answer.route}")
    typer.echo(f"path: {' → '.join(answer.path)}  reasons: {', '.join(answer.reasons)}")
    if answer.answer:  # a provisional answer is given now, its review follows
        typer.echo(f"docs: {', '.join(d['doc_id'] for d in answer.docs)}")
        typer.echo(answer.answer)
    if answer.pending_review:
        typer.echo(
            f"waiting for review (thread {answer.thread_id}); candidates: "
            + ", ".join(row["label"] for row in answer.review.get("candidates", []))
        )
        typer.echo(f"resolve with: labelgate review resolve {answer.thread_id} --labels <a,b> --reviewer <name>")


@review_app.command("list")
def review_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List threads waiting for a reviewer."""
    pending = _run(lambda: _assistant().pending_reviews())
    if as_json:
        _print_json([{"thread_id": p.thread_id, "query": p.query, **p.payload} for p in pending])
        return
    if not pending:
        typer.echo("no pending reviews")
    for p in pending:
        cands = ", ".join(f"{row['label']}({row['score']:.2f})" for row in p.payload.get("candidates", []))
        typer.echo(f"{p.thread_id}  {p.query}\n    candidates: {cands}\n    reasons: {', '.join(p.payload['reasons'])}")


@review_app.command("resolve")
def review_resolve(
    thread_id: str,
    labels: Annotated[str, typer.Option(help="comma-separated label ids")],
    reviewer: Annotated[str, typer.Option(help="who confirms")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Confirm the labels of a paused thread and finish its run."""
    chosen = _comma_list(labels)
    answer = _run(lambda: _assistant().resume(thread_id, labels=chosen, reviewer=reviewer))
    if as_json:
        _print_json(answer.to_dict())
        return
    typer.echo(f"labels: {', '.join(answer.labels)} (reviewed by {reviewer})")
    typer.echo(answer.answer)


@review_app.command("serve")
def review_serve(
    host: Annotated[str | None, typer.Option(help="bind address (default: settings.review_host)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port (default: settings.review_port)")] = None,
) -> None:
    """Serve the review web page alone (the LangGraph server mounts the same page at /review)."""
    from app.core.extras import require
    from app.service.web import AssistantBackend, create_app, serve_token, with_doc_reviews

    s = _settings()
    uvicorn = _run(lambda: require("uvicorn", "server"))
    host, port = host or s.review_host, port or s.review_port
    token = _run(lambda: serve_token(s, host))
    assistant = _run(_assistant)
    web = _run(lambda: create_app(lambda: with_doc_reviews(AssistantBackend(assistant), s), token))
    shown = "<LABELGATE_REVIEW_TOKEN>" if s.review_token else token  # a configured secret stays out of logs
    typer.echo(f"review page: http://{host}:{port}/review?token={shown}")
    uvicorn.run(web, host=host, port=port, log_level="warning")


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="one feedback round: review → retrain → before/after")] = False,
) -> None:
    """The seed's drift example and sample questions, through the real graph (--loop: the feedback loop)."""
    from app.ops.demo import format_demo, run_demo

    if loop:
        from app.ops.loop import LoopPlan, format_loop, run_loop

        s = _settings()
        outcome = _run(lambda: run_loop(s, LoopPlan.load(s.data_dir / "loop.yaml")))
        _print_json(outcome) if as_json else typer.echo(format_loop(outcome))
        return

    result = _run(lambda: run_demo(_assistant()))
    if as_json:
        _print_json(result)
    else:
        typer.echo(format_demo(result))


def main() -> None:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app(prog_name="labelgate")


if __name__ == "__main__":
    main()
