"""Shared fixtures: the demo taxonomy, tiny random-init encoders, keyword voters, an ephemeral Chroma KB."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ["LANGSMITH_TRACING"] = "false"

from app.core.config import Settings
from app.core.taxonomy import Taxonomy
from app.testing import keyword_voter

# Property tests run on 2 shared CPU cores in CI: a slow example is not a failure (time limits live in benchmarks).
hypothesis_settings.register_profile("labelgate", deadline=None)
hypothesis_settings.load_profile("labelgate")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return Taxonomy.load(ROOT / "data" / "taxonomy.yaml")


# Tests that start a server process or thread (uvicorn, `langgraph dev`, `chroma run`), Chromium, or a throwaway
# PostgreSQL carry the markers `server`, `browser`, `postgres` (pyproject): `make test` runs them all, `make test-unit`
# only the fast rest. Those that get one through these session fixtures are marked here, so none can be forgotten; the
# parametrised backends mark their server/postgres param (pytest.param marks), the rest mark themselves.
MARKED_BY_FIXTURE = {"chroma_server_url": "server", "postgres_server": "postgres", "postgres_url": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({name for fixture, name in MARKED_BY_FIXTURE.items() if fixture in used}):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def require_or_skip(env_var: str, reason: str) -> NoReturn:
    """A test whose outside need (a browser, a database, a server) is missing: skipped with the reason, or failed
    where `env_var`=1 says it must run (CI sets LABELGATE_REQUIRE_BROWSER/_POSTGRES/_CHROMA in .ci/run)."""
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{env_var}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.testing import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"), seed=0)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=ROOT / "data",
        home=tmp_path / "home",
        model_dir=tmp_path / "models",
        top_k=3,
        fetch_k=6,
        llm_local=False,
    )


@pytest.fixture()
def chroma_client() -> Iterator[object]:
    from app.core.kb import ephemeral_client

    yield ephemeral_client()  # collections get unique names per test


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `chroma run` server for the session (the `chroma` CLI of the installed chromadb), stopped at the end."""
    from app.ops.testservers import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "data") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One throwaway PostgreSQL for the session (Debian's package, installed when missing); its superuser URL.
    Skipped with the reason where it cannot be had, except under LABELGATE_REQUIRE_POSTGRES=1 (CI): then it fails."""
    from app.core.errors import LocalServerError
    from app.ops.testservers import local_postgres

    with contextlib.ExitStack() as stack:
        try:
            if importlib.util.find_spec("psycopg") is None:
                raise LocalServerError("psycopg is not installed: pip install 'labelgate[postgres]'")
            url = stack.enter_context(local_postgres())
        except LocalServerError as exc:
            require_or_skip("LABELGATE_REQUIRE_POSTGRES", f"there is no local PostgreSQL: {exc}")
        yield url


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database on the session's server for one test, dropped afterwards."""
    from app.ops.testservers import create_database, drop_database

    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test settings on each checkpoint/feedback backend: SQLite files in home, or LABELGATE_DATABASE_URL."""
    if request.param == "sqlite":
        return settings
    return settings.model_copy(update={"database_url": request.getfixturevalue("postgres_url")})


@pytest.fixture()
def collection_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


KEYWORDS_A = {
    "屏幕": ["屏幕", "碎屏", "屏"],
    "保修政策": ["保修"],
    "电池": ["电池", "续航"],
    "活动优惠": ["活动", "优惠"],
    "以旧换新": ["以旧换新", "旧机"],
    "服务态度": ["态度"],
    "其他": ["天气", "股票"],
}
KEYWORDS_B = {**KEYWORDS_A, "维修进度": ["进度", "修好"], "电池": ["电池"], "虚假宣传": ["宣传"]}


@pytest.fixture()
def voters(taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    return [keyword_voter("A", taxonomy, KEYWORDS_A), keyword_voter("B", taxonomy, KEYWORDS_B)]


# A handful of queries per label for tiny data dirs (CLI and soak tests).
ROWS = {
    "屏幕": ["屏幕裂了", "屏幕碎了怎么办", "手机屏幕坏了"],
    "电池": ["电池不耐用", "电池鼓包了", "换电池多少钱"],
    "活动优惠": ["有什么活动", "双十一优惠", "最近有优惠吗"],
    "服务态度": ["客服态度差", "店员态度恶劣", "投诉你们的态度"],
    "其他": ["今天天气怎么样", "股票怎么买", "讲个笑话"],
}


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


SEED_DOCS = [
    ("D1", "屏幕损坏属于保修范围，可免费更换一次。", ["屏幕", "保修政策"]),
    ("D2", "保修期内非人为损坏的屏幕可以免费维修。", ["屏幕", "保修政策"]),
    ("D3", "电池和屏幕问题请携带发票到指定门店维修。", ["电池", "屏幕"]),
    ("D4", "购买新款手机可享以旧换新活动。", ["以旧换新", "活动优惠"]),
    ("D5", "购买旗舰手机赠送延保服务。", ["延保服务", "活动优惠"]),
    ("D6", "限时活动：购买手机赠送耳机和手机壳。", ["活动优惠"]),
    ("K1", "会员积分可以在门店抵扣现金。", ["其他"]),
]


@pytest.fixture()
def kb(chroma_client, collection_name, tiny_encoder_dir, taxonomy):  # type: ignore[no-untyped-def]
    from app.core.data import Doc
    from app.core.kb import KnowledgeBase
    from app.core.voters.encoders import HFEncoder

    base = KnowledgeBase.open(chroma_client, collection_name, HFEncoder(str(tiny_encoder_dir)))
    base.index(
        [Doc(i, t, tuple(taxonomy.expand(labels)), f"title {i}") for i, t, labels in SEED_DOCS],
        taxonomy,
        chunk_chars=100,
    )
    return base


@pytest.fixture()
def components(settings, taxonomy, voters, kb):  # type: ignore[no-untyped-def]
    from app.core.components import Components
    from app.core.rules import Rule, RuleSet

    rules = RuleSet(
        (Rule("promo", ("销售", "活动优惠"), ("活动", "优惠")), Rule("warranty", ("售后", "保修政策"), ("保修",)))
    )
    from app.core.feedback import FeedbackStore

    return Components(settings, taxonomy, rules, voters, kb, llm=None, feedback=FeedbackStore(settings.feedback_db_url))
