"""Faults injected for real (issue 9 item 4): each ends in its documented fallback or a typed error with a fix hint,
within a bound; feedback that cannot be written is not lost (the review stays pending) and arrives exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.ops.soak import SoakResult
from app.ops.soak.outcome import BOUND, Outcome
from tests.conftest import ROOT, require_or_skip


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from app.ops.soak.scratch import build_scratch_home

    root = tmp_path_factory.mktemp("faults") / "scratch"
    base = Settings(data_dir=ROOT / "data", llm_local=False)
    return build_scratch_home(base, root)


def failed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not o.ok or o.seconds > BOUND]


def test_every_llm_fault_falls_back_with_its_reason_in_time(scratch: Settings) -> None:
    from app.ops.soak.faults import llm_faults

    outcomes = llm_faults(scratch)
    assert len(outcomes) == 10 and failed(outcomes) == []
    by = {o.fault: o.outcome for o in outcomes}
    assert "OpenAITimeoutError" in by["llm_slow:answer"] and "OpenAITimeoutError" in by["llm_slow:extract"]
    assert by["llm_garbage_json:extract"] == "extract_skipped:llm_invalid_output"
    assert by["llm_garbage_json:answer"] == "answer:passages_llm_invalid_output"
    assert "OpenAIConnectionError" in by["llm_refused:answer"]


@pytest.mark.server  # `chroma run`, stalled behind a proxy, then stopped
def test_chroma_faults_fall_back_or_name_the_fix(scratch: Settings) -> None:
    from app.ops.soak.faults import chroma_faults

    outcomes = chroma_faults(scratch, Path(scratch.home).parent)
    assert failed(outcomes) == []
    by = {o.fault: o for o in outcomes}
    assert by["chroma_unreachable_at_start"].outcome.startswith("KnowledgeBaseError") and "chroma run" in (
        by["chroma_unreachable_at_start"].outcome
    )
    assert by["chroma_collection_dropped"].outcome == "retrieve_failed:kb_unavailable"
    if "chroma_stalled_mid_session" not in by:  # no `chroma run` server could be started: chroma_faults says why
        why = by["chroma_stopped_mid_session"].outcome
        require_or_skip("LABELGATE_REQUIRE_CHROMA", f"the stalled-Chroma fault did not run ({why})")
    stalled = by["chroma_stalled_mid_session"]
    assert stalled.outcome == "retrieve_failed:kb_unavailable" and stalled.seconds < scratch.chroma_timeout + 5
    assert by["chroma_answers_again"].ok and by["chroma_answers_again"].problem == ""
    assert by["chroma_stopped_mid_session"].outcome == "retrieve_failed:kb_unavailable"


def test_missing_or_corrupt_model_files_are_errors_naming_the_command(scratch: Settings) -> None:
    from app.ops.soak.faults import model_faults

    outcomes = model_faults(scratch, None)
    assert len(outcomes) == 5 and failed(outcomes) == []
    assert all(o.outcome.startswith("ModelNotBuiltError") and "run `labelgate" in o.outcome for o in outcomes)
    by = {o.fault: o.outcome for o in outcomes}
    assert "labelgate models build" in by["models:tokenizer_missing"]
    assert "labelgate train" in by["models:voter_head_truncated"]


def test_a_locked_or_read_only_checkpoint_file_is_a_typed_error_and_recovers(scratch: Settings) -> None:
    from app.ops.soak.faults import checkpoint_faults

    outcomes, how = checkpoint_faults(scratch)
    assert failed(outcomes) == [] and how in ("bind-mount-ro", "chmod", "unavailable")
    by = {o.fault: o for o in outcomes}
    assert "database is locked" in by["checkpoint_locked"].outcome and by["checkpoint_locked"].seconds < 10
    if how == "unavailable":  # root without mount: nothing can make the file read-only for root
        pytest.skip(by["checkpoint_read_only"].outcome)
    assert "readonly" in by["checkpoint_read_only"].outcome


@pytest.mark.parametrize("mount", [True, False], ids=["tmpfs-when-root", "sqlite-full-error"])
def test_feedback_on_a_full_disk_stays_pending_and_arrives_exactly_once(
    scratch: Settings, mount: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ops.soak import faultkit
    from app.ops.soak.feedback_faults import feedback_fault

    if not mount:  # the injector machines without root use
        monkeypatch.setattr(faultkit, "_root_can_mount", lambda: False)
    result = SoakResult("faults")
    outcomes, how = feedback_fault(scratch, Path(scratch.home).parent / f"disk-{mount}", result)
    assert failed(outcomes) == [], outcomes
    assert how in (("tmpfs", "sqlite-full-error") if mount else ("sqlite-full-error",))
    by = {o.fault: o.outcome for o in outcomes}
    assert "disk is full" in by["feedback_disk_full:review"] and "retry" in by["feedback_disk_full:review"]
    assert "disk is full" in by["feedback_disk_full:turn"]
    assert by["feedback_rows:review"] == "1 row(s) ['human']"
    assert by["feedback_rows:turn"] == "1 row(s) ['llm+rules']"
    assert result.counters["feedback_lost"] == 0 and result.counters["feedback_doubled"] == 0


def test_a_fault_that_is_not_handled_is_reported_not_passed() -> None:
    from app.ops.soak.outcome import fallback, typed_error

    def boom() -> None:
        raise RuntimeError("untyped")

    assert typed_error("x", boom).problem == "unexpected_error"
    assert typed_error("x", lambda: None).problem == "no_error"
    assert fallback("x", boom, ("a",)).problem == "unexpected_error"


@pytest.mark.parametrize(
    ("text", "bad"),
    [("屏幕可免费更换 [D1]。", False), ('{"labels": "x"}', True), ("ok\x00", True), ("<html>502</html>", True)],
)
def test_garbled_answers_are_recognised(text: str, bad: bool) -> None:
    from nodes.answer import garbled

    assert garbled(text) is bad


def test_checkpoint_error_hints() -> None:
    import sqlite3

    from app.core.checkpoints import sqlite_error

    path = Path("/x/checkpoints.sqlite")
    assert "LABELGATE_DATABASE_URL" in str(sqlite_error(path, sqlite3.OperationalError("database is locked")))
    assert "writable" in str(sqlite_error(path, sqlite3.OperationalError("attempt to write a readonly database")))
    assert "free space" in str(sqlite_error(path, sqlite3.OperationalError("database or disk is full")))
