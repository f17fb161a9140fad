"""The costly parts of `labelgate bench` in child processes (their memory must not count as the serving process's):
the grown knowledge base and the indexing rate, the training-time curve, and the int8 accuracy delta on a public
dataset. `python -m app.ops.eval.jobs NAME ARGS_JSON` reads the settings as JSON on stdin (not argv: keys stay out of
the process list) and prints one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.errors import JobError


def run_job(name: str, args: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its stderr passes through (progress), its last stdout line is the result."""
    payload = settings.model_dump_json(exclude={"review_token"})
    proc = subprocess.run(
        [sys.executable, "-m", "app.ops.eval.jobs", name, json.dumps(args)],
        input=payload,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise JobError(f"bench job {name!r} failed (exit {proc.returncode}); its error is above")
    return dict(json.loads(lines[-1]))


def kb_job(settings: Settings, chunks: int, corpus: list[str], sample: int) -> dict[str, Any]:
    """Build or sync the grown KB (persisted, reused by later runs) and index `sample` fresh chunks to measure rate."""
    from app.core.embedder import load_embedder
    from app.core.kb import ephemeral_client
    from app.ops.eval.filler import grown_kb

    embedder = load_embedder(settings)
    dirs = [Path(c) for c in corpus]
    _, grown = grown_kb(settings, embedder, chunks, dirs)
    fresh = settings.model_copy(update={"collection": f"rate-{time.time_ns()}"})
    _, rate = grown_kb(fresh, embedder, sample, dirs, client=ephemeral_client())
    return {"grown": grown, "index_rate": rate}


def train_curve_job(settings: Settings, data: str, sizes: list[int]) -> dict[str, Any]:
    """Voter A (LoRA, class-weighted loss, the settings' step budget) trained on growing slices of a dataset."""
    import random

    import torch

    from app.core.data import load_examples
    from app.core.taxonomy import Taxonomy
    from app.ops.eval.datasets import prepare
    from app.ops.training.loops import budget_epochs, train_voter_a

    torch.set_num_threads(settings.threads)
    points = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="labelgate-curve-") as tmp:
            out = prepare(Path(data), Path(tmp), max_train=size)
            taxonomy = Taxonomy.load(out / "taxonomy.yaml")
            train = load_examples(out / "queries" / "train.jsonl", taxonomy)
            dev = load_examples(out / "queries" / "dev.jsonl", taxonomy)
            dev = random.Random(1).sample(dev, min(300, len(dev)))  # dev loss each epoch: keep it cheap
            start = time.perf_counter()
            train_voter_a(
                train,
                dev,
                taxonomy,
                encoder_spec=settings.encoder_a_id,
                prefix=settings.query_prefix,
                cfg=settings.train,
            )
            seconds = time.perf_counter() - start
            epochs = budget_epochs(len(train), settings.train)
            steps = epochs * -(-len(train) // settings.train.batch_size)
            points.append({"rows": len(train), "epochs": epochs, "steps": steps, "seconds": round(seconds, 1)})
    return {"data": data, "points": points}


def int8_job(settings: Settings, data: str) -> dict[str, Any]:
    """Train both voters on a public dataset; voter A scored on its test split on torch and on int8 ONNX Runtime."""
    from app.ops.eval.datasets import prepare
    from app.ops.training.train import train_voters

    with tempfile.TemporaryDirectory(prefix="labelgate-int8-") as tmp:
        prepared = prepare(Path(data), Path(tmp) / "data")
        local = settings.model_copy(update={"data_dir": prepared, "home": Path(tmp) / "home"})
        report = train_voters(local)
    by_runtime = report["test_by_runtime_a"]
    return {
        "data": data,
        "test_rows": report["test"]["rows"],
        "by_runtime": by_runtime,
        "accuracy_delta_A": round(by_runtime["onnx-int8"]["accuracy_A"] - by_runtime["torch"]["accuracy_A"], 4),
        "train_seconds": report["train_seconds"],
    }


JOBS: dict[str, Any] = {"kb": kb_job, "train_curve": train_curve_job, "int8": int8_job}


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(logging.INFO)
    name, args = argv
    result = JOBS[name](Settings(**json.loads(sys.stdin.read())), **json.loads(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
