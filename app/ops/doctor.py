"""`labelgate doctor`: one check per part — models, LLM, Chroma, checkpointer, feedback store, LangSmith — each ok /
warn / fail with the command that fixes it. Every network check has a short timeout, so the doctor never hangs."""

from __future__ import annotations

import importlib.util
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from app.core.config import Settings
from app.core.errors import LabelgateError, redact_url

Status = Literal["ok", "warn", "fail"]
NET_TIMEOUT = 3.0  # seconds for each network probe


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a GET; an HTTP error status is returned, a network failure raises OSError."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read(65536)
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def model_checks(s: Settings, timeout: float) -> list[Check]:
    from app.core.embedder import int8_path
    from app.core.llm_local import GGUF_NAME
    from app.core.voters.encoders import USE_SPEC
    from app.core.voters.store import load_pair

    build = "labelgate models build"
    checks = []
    spec = s.encoder_a_id
    if spec == str(s.e5_dir):
        ok = (s.e5_dir / "config.json").is_file() and (s.e5_dir / "build.json").is_file()
        detail = f"e5 checkpoint {s.e5_dir}" + ("" if ok else " is missing or incomplete")
        checks.append(Check("models:e5", "ok" if ok else "fail", detail, "" if ok else build))
    else:
        exists = not spec.startswith(("/", ".", "~")) or os.path.exists(os.path.expanduser(spec))
        checks.append(Check("models:e5", "ok" if exists else "fail", f"encoder_a {spec}", "" if exists else build))
    if s.embedder_runtime == "onnx-int8" and s.embedder_id != USE_SPEC:
        path = int8_path(s)
        ok = path.is_file()
        checks.append(
            Check("models:int8", "ok" if ok else "fail", f"int8 retrieval export {path}", "" if ok else build)
        )
    else:
        checks.append(Check("models:int8", "ok", f"not used (embedder {s.embedder_id}, {s.embedder_runtime})"))
    try:
        voters = load_pair(s.voters_dir, threads=s.threads, runtime=s.voter_a_runtime)
    except LabelgateError as exc:
        checks.append(Check("models:voters", "fail", str(exc), "labelgate train"))
    else:
        from app.core.data import DemoData
        from app.core.taxonomy import Taxonomy

        names = ", ".join(f"{v.name} {v.version} ({v.meta.get('runtime', 'torch')})" for v in voters)
        stale = [v.name for v in voters if v.labels != Taxonomy.load(DemoData(s.data_dir).taxonomy).ids]
        if stale:
            checks.append(
                Check("models:voters", "warn", f"{names}; {stale} trained on other labels", "labelgate train")
            )
        else:
            checks.append(Check("models:voters", "ok", f"loaded {names}"))
    if s.llm_base_url or not s.llm_local:
        checks.append(Check("models:gguf", "ok", "not needed (no bundled local LLM in use)"))
    else:
        gguf = s.model_dir / GGUF_NAME
        ok = gguf.is_file()
        checks.append(Check("models:gguf", "ok" if ok else "fail", f"local LLM {gguf}", "" if ok else build))
    return checks


def llm_check(s: Settings, timeout: float) -> list[Check]:
    if s.llm_base_url:
        url = s.llm_base_url.rstrip("/") + "/models"
        base, shown = redact_url(s.llm_base_url), redact_url(url)
        fix = f"start the server at {base} or fix LABELGATE_LLM_BASE_URL"
        try:
            code, _ = _get(url, timeout, {"Authorization": f"Bearer {s.llm_api_key}"})
        except (OSError, ValueError) as exc:
            return [Check("llm", "fail", f"{base} is unreachable ({exc})", fix)]
        if code in (401, 403):
            return [Check("llm", "fail", f"{shown} refused the API key (HTTP {code})", "set LABELGATE_LLM_API_KEY")]
        if code != 200:
            return [Check("llm", "warn", f"{shown} answered HTTP {code} (not an OpenAI-compatible /models?)", fix)]
        return [Check("llm", "ok", f"{base} answers (model {s.llm_model})")]
    if not s.llm_local:
        return [
            Check(
                "llm",
                "warn",
                "no LLM: escalated queries skip extraction and answers are cited passages",
                "set LABELGATE_LLM_BASE_URL, or LABELGATE_LLM_LOCAL=true for the bundled one",
            )
        ]
    from app.core.llm_local import healthy, status

    state = status(s)
    if state.get("running"):
        if healthy(str(state["base_url"]).removesuffix("/v1"), timeout=timeout):
            return [Check("llm", "ok", f"local LLM server pid {state['pid']} at {state['base_url']} is healthy")]
        return [Check("llm", "warn", f"local LLM server pid {state['pid']} does not answer", "labelgate llm stop")]
    if importlib.util.find_spec("xllamacpp") is None:
        return [Check("llm", "fail", "the local LLM runtime is not installed", "pip install 'labelgate[llm]'")]
    return [Check("llm", "ok", "local LLM server not running: the first escalation starts it (`labelgate llm serve`)")]


def chroma_check(s: Settings, timeout: float) -> list[Check]:
    from app.core.kb import make_client, partition_name

    where = f"server {redact_url(s.chroma_url)}" if s.chroma_url else f"embedded {s.chroma_dir}"
    if not s.chroma_url and not s.chroma_dir.is_dir():
        return [Check("chroma", "fail", f"no knowledge base at {s.chroma_dir}", "labelgate index")]
    try:
        client = make_client(s.model_copy(update={"chroma_timeout": min(timeout, s.chroma_timeout)}))
    except LabelgateError as exc:
        fix = "start the Chroma server, or unset LABELGATE_CHROMA_URL" if s.chroma_url else "labelgate index"
        return [Check("chroma", "fail", str(exc), fix)]
    try:
        from app.core.kb_generations import serving_generation

        name = serving_generation(client, s.collection)  # the generation `labelgate index` last switched to
        collection = client.get_collection(name)
        count = collection.count()
        sample = collection.get(include=["metadatas"], limit=2000)["metadatas"]
        names = {c.name for c in client.list_collections()}
    except Exception as exc:  # chromadb's NotFoundError (never indexed) and friends
        missing = "does not exist" in str(exc)
        return [Check("chroma", "fail", f"{where}: {exc}", "labelgate index" if missing else "")]
    if count == 0:
        return [Check("chroma", "fail", f"{where}: collection {s.collection!r} is empty", "labelgate index")]
    wanted = {part for meta in sample for part in (meta or {}).get("partitions", [])}
    absent = sorted(label for label in wanted if partition_name(name, label) not in names)
    parts = sum(1 for n in names if n.startswith(f"{name}--") and n != f"{name}--current")
    if absent:
        detail = f"{where}: label partitions missing for {absent}"
        return [Check("chroma", "fail", detail, f"delete collection {s.collection!r}, then labelgate index")]
    shown = repr(s.collection) + (f" (generation {name})" if name != s.collection else "")
    return [Check("chroma", "ok", f"{where}: {shown} has {count} chunks in {parts} label partitions")]


def checkpointer_check(s: Settings, timeout: float) -> list[Check]:
    from app.core.checkpoints import checkpoint_status

    status, detail, fix = checkpoint_status(s.model_copy(update={"database_timeout": timeout}))
    return [Check("checkpointer", status, detail, fix)]  # type: ignore[arg-type]


def feedback_check(s: Settings, timeout: float) -> list[Check]:
    from app.core.feedback import stored_rows

    url = s.feedback_db_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        from pathlib import Path

        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return [Check("feedback", "ok", f"SQLite {path} (created on the first confirmation)")]
    try:
        rows = stored_rows(url, connect_timeout=timeout)
    except LabelgateError as exc:
        return [Check("feedback", "fail", str(exc), "fix LABELGATE_FEEDBACK_URL / LABELGATE_DATABASE_URL")]
    if rows is None:
        return [Check("feedback", "ok", f"{redact_url(url)}: reachable, no feedback table yet (made on first use)")]
    return [Check("feedback", "ok", f"{redact_url(url)}: {rows} confirmed label sets")]


def langsmith_check(s: Settings, timeout: float) -> list[Check]:
    from langsmith import utils as ls_utils

    clear = ls_utils.get_env_var.cache_clear  # type: ignore[attr-defined]  # an lru_cache: env reads are cached
    clear()  # the doctor must see the environment as it is now, and leave no stale values behind
    try:
        tracing = ls_utils.tracing_is_enabled() is True
        key, endpoint = ls_utils.get_api_key(None), ls_utils.get_api_url(None)
        project = ls_utils.get_tracer_project()
    finally:
        clear()
    if not tracing:
        note = " (an API key is set)" if key else ""
        return [Check("langsmith", "ok", f"tracing off{note}; set LANGSMITH_TRACING=true to trace to {endpoint}")]
    off = "or export LANGSMITH_TRACING=false"
    if not key:
        return [Check("langsmith", "fail", "LANGSMITH_TRACING is on but no LANGSMITH_API_KEY", f"set it {off}")]
    try:
        code, _ = _get(f"{endpoint}/info", timeout)
    except (OSError, ValueError) as exc:
        detail = (
            f"tracing on but {endpoint} is unreachable ({exc}): runs are dropped and every process waits ~10 s "
            "at exit while the uploads retry"
        )
        return [Check("langsmith", "warn", detail, f"fix the network or LANGSMITH_ENDPOINT, {off}")]
    return [Check("langsmith", "ok", f"tracing to {endpoint} (project {project}); /info answered HTTP {code}")]


PARTS: dict[str, Callable[[Settings, float], list[Check]]] = {
    "models": model_checks,
    "llm": llm_check,
    "chroma": chroma_check,
    "checkpointer": checkpointer_check,
    "feedback": feedback_check,
    "langsmith": langsmith_check,
}


def run_doctor(
    settings: Settings,
    *,
    timeout: float = NET_TIMEOUT,
    parts: dict[str, Callable[[Settings, float], list[Check]]] | None = None,
) -> list[Check]:
    """Every check (of `parts`, default all); one that raises becomes a failed check, the others still run."""
    checks: list[Check] = []
    for name, part in (PARTS if parts is None else parts).items():
        try:
            checks.extend(part(settings, timeout))
        except Exception as exc:  # the doctor reports whatever breaks; it must not die on the thing it diagnoses
            checks.append(Check(name, "fail", f"{type(exc).__name__}: {exc}"))
    return checks


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": not any(c.status == "fail" for c in checks), "checks": [c.to_dict() for c in checks]}


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper():<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    lines.append(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    return "\n".join(lines)
