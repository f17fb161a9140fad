"""Settings sources and precedence; query cleaning at the edges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.core.config import Settings, load_settings
from app.core.errors import ConfigError, InputError
from app.core.textutil import _CONTROL, chunk_text, clean_query, passages, terms


def test_defaults_env_file_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().top_k == Settings().top_k == 3
    config = tmp_path / "lg.toml"
    config.write_text("top_k = 5\nfetch_k = 20\n[vote]\nmin_margin = 0.3\n", encoding="utf-8")
    assert load_settings(config).vote.min_margin == 0.3
    monkeypatch.setenv("LABELGATE_TOP_K", "7")
    monkeypatch.setenv("LABELGATE_VOTE__MIN_MARGIN", "0.2")
    settings = load_settings(config, fetch_k=11)
    assert (settings.top_k, settings.fetch_k, settings.vote.min_margin) == (7, 11, 0.2)  # overrides > env > file
    monkeypatch.setenv("LABELGATE_CONFIG", str(config))
    assert load_settings().fetch_k == 20


def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("top_k = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad)
    monkeypatch.setenv("LABELGATE_TOP_K", "zero")
    with pytest.raises(ConfigError, match="top_k"):
        load_settings()
    monkeypatch.delenv("LABELGATE_TOP_K")
    with pytest.raises(ConfigError, match="no_such_field"):
        load_settings(no_such_field=1)


def test_invalid_settings_never_echo_passwords_or_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_DATABASE_URL", "mysql://labelgate:s3cret-pw@db/x")
    monkeypatch.setenv("LABELGATE_TOP_K", "many")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "s3cret-pw" not in message and "database_url: Value error, database_url must be a PostgreSQL URL" in message
    assert "top_k:" in message and "'many'" in message  # other values are shown: they help to fix the setting


def test_clean_query_cases() -> None:
    assert clean_query("  屏幕碎了😡 iPhone ", 100) == ("屏幕碎了😡 iPhone", [])
    assert clean_query("a\x00b", 100) == ("a b", ["control_chars_stripped"])
    assert clean_query("屏" * 20, 5) == ("屏" * 5, ["query_truncated:5"])
    for bad in ("", "   ", "\x00\u200b", None, 42):
        with pytest.raises(InputError):
            clean_query(bad, 100)


@given(st.text(max_size=300), st.integers(1, 50))
def test_clean_query_property(text: str, cap: int) -> None:
    try:
        cleaned, _ = clean_query(text, cap)
    except InputError:
        return
    assert cleaned and len(cleaned) <= cap and not _CONTROL.search(cleaned)


def test_terms_drop_stop_words() -> None:
    words = terms("我的手机屏幕裂了，保修可以换吗？")
    assert "屏幕" in words and "保修" in words
    assert not {"的", "了", "吗", "，", "？"} & set(words)


def test_chunk_text_packs_sentences_and_cuts_long_ones() -> None:
    text = "第一句。第二句！第三句？" + "长" * 25
    chunks = chunk_text(text, max_chars=10)
    assert all(len(c) <= 10 for c in chunks)
    assert "".join(chunks) == text
    assert chunk_text("短句。", 100) == ["短句。"]
    assert chunk_text("   ", 100) == []


@given(st.lists(st.text(min_size=0, max_size=80), max_size=8), st.integers(8, 60), st.integers(1, 8))
@example(["", "\n0"], 8, 1)  # a blank line between sentences: the chunk must not glue across it
def test_passages_are_question_sized_pieces_of_the_text(sentences: list[str], cap: int, floor: int) -> None:
    text = "。".join(sentences)
    found = passages(text, max_chars=cap, min_chars=floor)
    assert all(floor <= len(p) <= cap for p in found)
    assert all(p in text for p in found)
    assert passages("屏幕碎了怎么办？电池不耐用。" * 4, max_chars=8) == ["屏幕碎了怎么办？", "电池不耐用。"] * 4
