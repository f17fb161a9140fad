"""Operator commands: the local LLM server, the feedback store, retrain/rollback and the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import comma_list, print_json, run, settings

llm_app = typer.Typer(no_args_is_help=True, help="the bundled local LLM server")
feedback_app = typer.Typer(no_args_is_help=True, help="confirmed labels that feed retraining")
bench_app = typer.Typer(help="benchmarks that write JSON; without a subcommand: the whole serving benchmark")
OutOption = Annotated[Path | None, typer.Option(help="write the JSON here too")]
SplitOption = Annotated[str, typer.Option(help="query split")]


@llm_app.command("serve")
def llm_serve() -> None:
    """Start the local LLM server in the background (or reuse a healthy one) and print its address."""
    from app.core.llm_local import serve

    state = run(lambda: serve(settings()))
    print_json({"pid": state.pid, "base_url": state.base_url, "model": state.model})


@llm_app.command("status")
def llm_status() -> None:
    """Is the local LLM server running and healthy?"""
    from app.core.llm_local import status

    print_json(run(lambda: status(settings())))


@llm_app.command("stop")
def llm_stop() -> None:
    """Stop the local LLM server that labelgate started."""
    from app.core.llm_local import stop

    typer.echo("stopped" if run(lambda: stop(settings())) else "not running")


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option(help="JSONL file of training rows")] = Path("feedback.jsonl"),
) -> None:
    """Write confirmed label sets (latest per query) as training rows with their provenance."""
    from app.core.data import DemoData
    from app.core.feedback import FeedbackStore
    from app.core.taxonomy import Taxonomy

    def go() -> int:
        s = settings()
        return FeedbackStore(s.feedback_db_url).export(out, Taxonomy.load(DemoData(s.data_dir).taxonomy))

    typer.echo(f"{run(go)} rows → {out}")


@feedback_app.command("list")
def feedback_list() -> None:
    """Every stored confirmation, oldest first, as JSON."""
    from dataclasses import asdict

    from app.core.feedback import FeedbackStore

    print_json([asdict(row) for row in run(lambda: FeedbackStore(settings().feedback_db_url).rows())])


def retrain_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Train new voters on training data + feedback; promote only if not worse on the test split."""
    from app.ops.training.retrain import retrain

    result = run(lambda: retrain(settings()))
    if as_json:
        print_json(result)
        return
    typer.echo(f"feedback rows: {result['feedback_rows']}; candidate {result['candidate']['version']}")
    for line in result["comparison"]:
        typer.echo(f"  {line}")
    verdict = "promoted" if result["promoted"] else "NOT promoted (kept"
    typer.echo(f"{verdict} {result['now_current']}" + ("" if result["promoted"] else ")"))


def rollback_command() -> None:
    """Make the previously promoted voter versions current again."""
    from app.ops.training.retrain import rollback

    result = run(lambda: rollback(settings()))
    typer.echo(f"rolled back {result['from']} → {result['to']}")


def doctor_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check models, LLM server, Chroma, checkpointer, feedback store and LangSmith settings; print what to fix
    (exit 1 when a check fails)."""
    from app.ops.doctor import format_checks, report, run_doctor

    checks = run(lambda: run_doctor(settings()))
    print_json(report(checks)) if as_json else typer.echo(format_checks(checks))
    if not report(checks)["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    app.command("retrain")(retrain_command)
    app.command("doctor")(doctor_command)
    models_app.command("rollback")(rollback_command)


def _components(*, llm: bool = True) -> Any:
    from app.core.components import Components

    s = settings() if llm else settings().model_copy(update={"llm_local": False, "llm_base_url": None})
    return Components.load(s)


def _split(components: Any, name: str) -> Any:
    from app.core.data import DemoData, load_examples

    return load_examples(DemoData(components.settings.data_dir).split(name), components.taxonomy)


@bench_app.command("gate")
def bench_gate(out: OutOption = None, split: SplitOption = "test") -> None:
    """Latency of classify + vote per query (p50/p95/p99) and per voter, on the demo queries."""
    from app.ops.eval.latency import bench_gate as run_bench

    def go() -> dict[str, Any]:
        components = _components(llm=False)  # the gate never calls the LLM: don't start its server
        return run_bench(components, [ex.text for ex in _split(components, split)])

    print_json(run(go), out)


@bench_app.command("log")
def bench_log(
    out: OutOption = None,
    split: SplitOption = "test",
    queries: Annotated[int, typer.Option(min=1, help="at most this many queries of the split")] = 100,
) -> None:
    """CPU cost of the decision log: recorder callbacks per ask and writer inserts per row, against their targets
    (exit 1 when a figure misses its target)."""
    from app.ops.eval.latency import bench_decision_log

    def go() -> dict[str, Any]:
        components = _components(llm=False)
        return bench_decision_log(components, [ex.text for ex in _split(components, split)][:queries])

    report = run(go)
    print_json(report, out)
    if not report["ok"]:
        typer.echo("error: the decision log missed its CPU targets (see the report)", err=True)
        raise typer.Exit(1)


@bench_app.command("extract")
def bench_extract(
    out: OutOption = None,
    split: SplitOption = "test",
    limit: Annotated[int | None, typer.Option(help="at most this many escalated queries")] = None,
    llm: Annotated[bool, typer.Option(help="--no-llm: only the gate and the kNN vote (no LLM calls)")] = True,
) -> None:
    """LLM extraction accuracy and latency on the queries the voters escalate (few-shot: LABELGATE_FEWSHOT_K), and
    the kNN vote over reviewed examples, alone and as a third opinion on escalations."""
    from app.ops.eval.llm import bench_extract as run_bench

    def go() -> dict[str, Any]:
        components = _components(llm=llm)
        return run_bench(components, _split(components, split), limit=limit, llm=llm)

    print_json(run(go), out)


@bench_app.command("answer")
def bench_answer(out: OutOption = None) -> None:
    """Latency of grounded LLM answers on the demo's sample questions."""
    from app.core.data import DemoData, load_samples
    from app.ops.eval.llm import bench_answer as run_bench

    def go() -> dict[str, Any]:
        components = _components()
        samples = load_samples(DemoData(components.settings.data_dir).samples)
        return run_bench(components, [sample["text"] for sample in samples])

    print_json(run(go), out)


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@bench_app.callback(invoke_without_command=True)
def bench_all(
    ctx: typer.Context,
    out: OutOption = None,
    chunks: Annotated[int, typer.Option(min=100, help="grow the knowledge base to this many chunks")] = 100_000,
    queries: Annotated[int, typer.Option(min=10, help="demo queries for latency")] = 500,
    llm_queries: Annotated[int, typer.Option(min=0, help="queries for the LLM-only baseline (0 = skip)")] = 40,
    per_level: Annotated[int, typer.Option(min=1, help="queries per throughput level (1, 4, 16 callers)")] = 200,
    corpus: Annotated[
        list[Path] | None, typer.Option(help="dirs of *.jsonl with real text for filler chunks (default: public data)")
    ] = None,
    index_sample: Annotated[int, typer.Option(min=100, help="fresh chunks indexed to measure chunks/s")] = 2000,
    train_data: Annotated[str, typer.Option(help="dataset dir for the training-time curve ('' = skip)")] = str(
        SHARED_DATA / "clinc150"
    ),
    train_sizes: Annotated[
        str, typer.Option(help="training rows per curve point, comma-separated")
    ] = "500,1000,2000,5000",
    int8_data: Annotated[str, typer.Option(help="dataset dir for the int8 accuracy delta ('' = skip)")] = str(
        SHARED_DATA / "smp2017"
    ),
) -> None:
    """Everything in one run: gate, nodes, non-LLM path at N chunks, LangGraph overhead, throughput, LLM-only baseline,
    peak RSS, indexing rate, training curve, int8 accuracy delta."""
    if ctx.invoked_subcommand is not None:
        return
    from app.core.embedder import open_kb
    from app.core.errors import JobError
    from app.core.kb import make_client
    from app.ops.eval.bench import run_bench
    from app.ops.eval.filler import grown_name
    from app.ops.eval.jobs import run_job

    failed: list[str] = []

    def go() -> dict[str, Any]:
        s = settings()

        def job(name: str, args: dict[str, Any]) -> dict[str, Any]:
            try:
                return run_job(name, args, s)
            except JobError as exc:  # the rest of the report still counts: record the failure, keep going
                failed.append(name)
                return {"error": str(exc)}

        public = [d for d in (SHARED_DATA / "chipsts", SHARED_DATA / "smp2017") if d.is_dir()]
        dirs = [str(p) for p in corpus or public or [s.data_dir]]  # no public data: the demo's own texts
        kb = run_job("kb", {"chunks": chunks, "corpus": dirs, "sample": index_sample}, s)
        components = _components(llm=llm_queries > 0)
        bench_client = make_client(s.model_copy(update={"home": s.home / "bench", "chroma_url": None}))
        grown = open_kb(s, bench_client, components.kb.embedder, grown_name(s, chunks))
        report = run_bench(components, grown, queries=queries, llm_queries=llm_queries, per_level=per_level)
        report["index_chunks_per_s"] = kb["index_rate"]["chunks_per_s"]
        report["kb_build"] = kb
        sizes = [int(x) for x in comma_list(train_sizes)]
        if train_data and sizes:
            report["train_curve"] = job("train_curve", {"data": train_data, "sizes": sizes})
        demo = s.home / "train_report.json"
        trained = json.loads(demo.read_text("utf-8")) if demo.is_file() else {}
        report["int8"] = {"demo": trained.get("test_by_runtime_a")}
        if int8_data:
            report["int8"]["dataset"] = job("int8", {"data": int8_data})
        return report | {"failed": failed}

    print_json(run(go), out)
    if failed:
        typer.echo(f"error: bench sections failed: {', '.join(failed)} (the report has the rest)", err=True)
        raise typer.Exit(1)


@bench_app.command("trace")
def bench_trace(
    out: OutOption = None,
    queries: Annotated[int, typer.Option(min=10, help="demo queries per mode")] = 200,
    rounds: Annotated[int, typer.Option(min=1, help="times each mode runs, alternating")] = 2,
    modes: Annotated[
        str,
        typer.Option(
            help="comma-separated, default all: off, unreachable, unreachable-no-pause, fake, hosted, default-client"
        ),
    ] = "",
) -> None:
    """LangSmith tracing's cost per turn (off / unreachable / local fake / hosted offline / default client) and the
    process exit time after the last turn, each mode in a fresh process (app/ops/eval/tracebench.py)."""
    from app.core.data import DemoData, load_examples
    from app.core.taxonomy import Taxonomy
    from app.ops.eval.tracebench import MODES
    from app.ops.eval.tracebench import bench_trace as run_bench

    def go() -> dict[str, Any]:
        s = settings()
        data = DemoData(s.data_dir)
        taxonomy = Taxonomy.load(data.taxonomy)
        texts = [ex.text for split in ("test", "dev", "train") for ex in load_examples(data.split(split), taxonomy)]
        chosen = comma_list(modes) or list(MODES)
        return run_bench(s, texts[:queries], modes=chosen, rounds=rounds)

    print_json(run(go), out)


@bench_app.command("filter")
def bench_filter(
    out: OutOption = None,
    chunks: Annotated[int, typer.Option(min=100, help="vectors in the collection")] = 100_000,
    queries: Annotated[int, typer.Option(min=1, help="queries per selectivity")] = 100,
    selectivity: Annotated[
        str, typer.Option(help="comma-separated shares of the chunks a label filter keeps")
    ] = "0.01,0.1",
    vectors: Annotated[
        str, typer.Option(help="random (isotropic) or real (the grown KB of `labelgate bench`)")
    ] = "random",
    ef_search: Annotated[
        int | None, typer.Option(min=10, help="ef_search of the raised partition; default: partition_ef_search")
    ] = None,
) -> None:
    """Recall@10 of label-filtered Chroma search (where-filter, partition collection) against exact search."""
    from app.core.errors import ConfigError
    from app.ops.eval import filterbench as fb

    def go() -> dict[str, Any]:
        s = settings()
        try:
            shares = [float(x) for x in comma_list(selectivity)]
            subsets_ok = bool(shares) and all(0 < x <= 1 for x in shares)
        except ValueError:
            subsets_ok = False
        if not subsets_ok:
            raise ConfigError(f"--selectivity wants shares in (0, 1] like 0.01,0.1, not {selectivity!r}")
        if vectors == "random":
            base, probes = fb.random_vectors(chunks), fb.random_vectors(queries, seed=99)
        elif vectors == "real":
            base, probes = fb.real_vectors(s, chunks, queries)
        else:
            raise ConfigError(f"--vectors must be random or real, not {vectors!r}")
        ef = ef_search or s.partition_ef_search
        return {"vectors": vectors} | fb.filter_recall(base, probes, shares, ef_search=ef)

    print_json(run(go), out)
