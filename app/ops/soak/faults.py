"""Fault soak (issue 9 item 4): inject each fault for real against a scratch home and check the documented behaviour.

LLM refused / slow past the timeout / garbage JSON / a non-JSON body / HTTP 500; Chroma server unreachable, hanging
or stopped mid-session, collection dropped or missing; voter and encoder files missing or corrupt (CURRENT to a missing
version, truncated safetensors, no tokenizer); the checkpoint file write-locked by another connection or read-only; the
feedback store's disk full. Each must end in its fallback (a reason in the Answer's `reasons`, a non-empty answer) or a
typed LabelgateError with a fix hint, within a bound — and feedback written exactly once after the disk frees.

`.venv/bin/python -m app.ops.soak.faults [--quick] [--workdir DIR]` runs it alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.ops.soak import SoakResult
from app.ops.soak.faultkit import (
    FakeLLMServer,
    FaultUnavailable,
    StallingProxy,
    closed_port_url,
    read_only,
    sqlite_write_lock,
)
from app.ops.soak.feedback_faults import feedback_fault
from app.ops.soak.outcome import Outcome, fallback, since, typed_error
from app.ops.soak.scratch import QUERY, build_scratch_home, escalating

FAILED = ("retrieve_failed:",)


def _load(settings: Settings) -> Any:
    from app.core.components import Components

    return Components.load(settings)


@contextlib.contextmanager
def _assistant(components: Any) -> Iterator[Any]:
    from app.service.api import Assistant

    with Assistant(components) as assistant:
        yield assistant


def llm_faults(settings: Settings) -> list[Outcome]:
    """The LLM refused, slow past llm_timeout, garbage JSON, an HTML body, HTTP 500: on the answer path (auto) and on
    the extract path (escalate), each turn falls back to the passages / review with the reason recorded."""
    from app.core.llm import make_chat_model

    paths = {"answer": _load(settings), "extract": _load(escalating(settings))}
    wanted = {"answer": ("answer:passages_llm",), "extract": ("extract_skipped:llm",)}
    out = []
    for mode in ("refused", "slow", "garbage_json", "not_json", "error_500"):
        with contextlib.ExitStack() as stack:
            if mode == "refused":
                url = closed_port_url()
            else:
                url = stack.enter_context(FakeLLMServer(mode, delay=settings.llm_timeout * 4)).base_url
            llm = make_chat_model(settings.model_copy(update={"llm_base_url": url}))
            for path, components in paths.items():
                with _assistant(dataclasses.replace(components, llm=llm)) as assistant:
                    out.append(fallback(f"llm_{mode}:{path}", functools.partial(assistant.ask, QUERY), wanted[path]))
    return out


def chroma_faults(settings: Settings, root: Path) -> list[Outcome]:
    """A Chroma server unreachable at startup or stopped mid-session, the collection dropped mid-session or never
    indexed."""
    from app.core.errors import LocalServerError
    from app.core.indexing import index_knowledge_base
    from app.ops.testservers import chroma_server

    down = settings.model_copy(update={"chroma_url": closed_port_url().removesuffix("/v1")})
    out = [typed_error("chroma_unreachable_at_start", lambda: _load(down))]
    with contextlib.ExitStack() as server:
        (root / "chroma-server").mkdir(parents=True, exist_ok=True)
        try:
            url = server.enter_context(chroma_server(root / "chroma-server" / "data"))
        except LocalServerError as exc:
            out.append(Outcome("chroma_stopped_mid_session", "fallback", f"skipped: {exc}", 0.0, True))
        else:
            index_knowledge_base(settings.model_copy(update={"chroma_url": url}), docs_path=root / "docs.jsonl")
            proxy = server.enter_context(StallingProxy("127.0.0.1", int(url.rsplit(":", 1)[1])))
            with _assistant(_load(settings.model_copy(update={"chroma_url": proxy.url}))) as assistant:
                assistant.ask(QUERY)
                proxy.stalled.set()  # the server hangs mid-request: the client's chroma_timeout ends the wait
                out.append(fallback("chroma_stalled_mid_session", functools.partial(assistant.ask, QUERY), FAILED))
                proxy.stalled.clear()
                out.append(fallback("chroma_answers_again", functools.partial(assistant.ask, QUERY), ("",)))
                server.close()  # the server process stops; the Assistant keeps its client
                out.append(fallback("chroma_stopped_mid_session", functools.partial(assistant.ask, QUERY), FAILED))
    components = _load(settings)
    with _assistant(components) as assistant:
        for name in [settings.collection, *(c.name for c in components.kb.client.list_collections())]:
            with contextlib.suppress(Exception):
                components.kb.client.delete_collection(name)
        out.append(fallback("chroma_collection_dropped", lambda: assistant.ask(QUERY), ("retrieve_failed:",)))
    with _assistant(_load(settings.model_copy(update={"collection": "never-indexed"}))) as assistant:
        out.append(fallback("chroma_collection_missing", lambda: assistant.ask(QUERY), ("retrieve_empty:",)))
    index_knowledge_base(settings, docs_path=root / "docs.jsonl")  # the scratch KB back for the next faults
    return out


@contextlib.contextmanager
def _damaged(path: Path, how: str) -> Iterator[None]:
    """`path` truncated to 100 bytes, removed, or overwritten with broken JSON; restored afterwards."""
    saved = path.read_bytes()
    if how == "truncate":
        path.write_bytes(saved[:100])
    elif how == "remove":
        path.unlink()
    else:
        path.write_text("{broken", encoding="utf-8")
    try:
        yield
    finally:
        path.write_bytes(saved)


def model_faults(settings: Settings, real: Settings | None) -> list[Outcome]:
    """Voter and encoder files missing or corrupt: a ModelNotBuiltError naming the command that rebuilds them."""
    from app.core.errors import ModelNotBuiltError

    voters, encoder = settings.voters_dir, Path(settings.encoder_a)
    cases = [
        ("current_to_missing_version", voters / "A" / "CURRENT", "v404"),
        ("voter_head_truncated", voters / "A" / "v1" / "head.safetensors", "truncate"),
        ("voter_meta_corrupt", voters / "B" / "v1" / "meta.json", "corrupt"),
        ("tokenizer_missing", encoder / "tokenizer.json", "remove"),
        ("encoder_weights_truncated", encoder / "model.safetensors", "truncate"),
    ]
    out = []
    for fault, path, how in cases:
        with _pointer(path, how) if how.startswith("v") else _damaged(path, how):
            out.append(typed_error(f"models:{fault}", lambda: _load(settings), ModelNotBuiltError))
    if real is not None:  # the trained voters, copied: a truncated head of voter A's CURRENT version
        version = (real.voters_dir / "A" / "CURRENT").read_text(encoding="utf-8").strip()
        with _damaged(real.voters_dir / "A" / version / "head.safetensors", "truncate"):
            out.append(typed_error("models:real_voter_head_truncated", lambda: _load(real), ModelNotBuiltError))
    return out


@contextlib.contextmanager
def _pointer(path: Path, version: str) -> Iterator[None]:
    saved = path.read_text(encoding="utf-8")
    path.write_text(version + "\n", encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(saved, encoding="utf-8")


def checkpoint_faults(settings: Settings) -> tuple[list[Outcome], str]:
    """The checkpoint file write-locked by another connection (the turn fails with a CheckpointerError, then works
    once the lock is gone), and read-only when the Assistant starts."""
    from app.core.errors import CheckpointerError
    from app.service.api import Assistant

    components = _load(settings)
    out = []
    with _assistant(components) as assistant:
        assistant.ask(QUERY)
        with sqlite_write_lock(settings.checkpoint_db):
            out.append(typed_error("checkpoint_locked", lambda: assistant.ask(QUERY), CheckpointerError))
        out.append(fallback("checkpoint_lock_released", lambda: assistant.ask(QUERY), ("",)))
    how = "unavailable"
    try:
        with read_only(settings.checkpoint_db) as how:
            opening = functools.partial(Assistant, components)
            out.append(typed_error("checkpoint_read_only", opening, CheckpointerError))
    except FaultUnavailable as exc:
        out.append(Outcome("checkpoint_read_only", "error", f"skipped: {exc}", 0.0, True))
    with _assistant(components) as assistant:
        out.append(fallback("checkpoint_writable_again", lambda: assistant.ask(QUERY), ("",)))
    return out, how


def _real_voters(settings: Settings, root: Path) -> Settings | None:
    """A copy of the trained voters in settings.home (None when there are none), in a home of its own."""
    source = settings.voters_dir
    if not all((source / name / "CURRENT").is_file() for name in ("A", "B")):
        return None
    home = root / "real-home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source, home / "voters")
    return settings.model_copy(update={"home": home, "llm_local": False, "llm_base_url": None, "chroma_url": None})


def _with_how(found: tuple[list[Outcome], str], hows: dict[str, str], key: str) -> list[Outcome]:
    hows[key] = found[1]
    return found[0]


def run(settings: Settings, workdir: Path, *, quick: bool) -> SoakResult:
    """Every fault above against a scratch home under `workdir` (tiny models; with quick=False also the trained
    voters of settings.home, copied). Counts unexpected errors, hangs and silent empty answers as `errors`."""
    result = SoakResult("faults")
    start = time.monotonic()
    scratch = build_scratch_home(settings, workdir / "scratch")
    real = None if quick else _real_voters(settings, workdir)
    hows: dict[str, str] = {}
    groups: dict[str, Callable[[], list[Outcome]]] = {
        "llm": lambda: llm_faults(scratch),
        "chroma": lambda: chroma_faults(scratch, workdir / "scratch"),
        "models": lambda: model_faults(scratch, real),
        "checkpoints": lambda: _with_how(checkpoint_faults(scratch), hows, "read_only_by"),
        "feedback": lambda: _with_how(feedback_fault(scratch, workdir / "scratch", result), hows, "disk_full_by"),
    }
    outcomes: list[Outcome] = []
    for group, inject in groups.items():
        started = time.monotonic()
        try:
            outcomes += inject()
        except Exception as exc:  # a fault script that breaks is an error of the run, not a crash of the soak
            text = f"{type(exc).__name__}: {exc}"[:300]
            outcomes.append(Outcome(f"{group}:script", "-", text, since(started), False, "unexpected_error"))
    unexpected = [o for o in outcomes if not o.ok and not o.fault.startswith("feedback_rows")]  # rows: own counters
    result.count("errors", len(unexpected))
    result.figures = {
        "injected": len(outcomes),
        "survived": sum(o.ok for o in outcomes),
        **hows,
        "real_voters": real is not None,
        "faults": [dataclasses.asdict(o) for o in outcomes],
    }
    result.seconds = round(time.monotonic() - start, 2)
    return result


def main() -> None:
    import argparse
    import json
    import tempfile

    from app.core.config import load_settings
    from app.ops.soak import summary_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models only")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch dir (default: a temp dir, removed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labelgate-faults-") as tmp:
        result = run(load_settings(), args.workdir or Path(tmp), quick=args.quick)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    for row in result.figures["faults"]:
        mark = "ok  " if row["ok"] else f"FAIL({row['problem']})"
        print(f"{mark} {row['fault']:<38} {row['seconds']:>6.2f}s  {row['outcome'][:150]}")
    print(f"faults: {result.figures['survived']}/{result.figures['injected']} as documented in {result.seconds} s")
    print(summary_line([result]))


if __name__ == "__main__":
    main()
