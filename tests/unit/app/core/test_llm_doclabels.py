"""The LLM's doc labels: taxonomy-bound, validated, asked once per content (cached), never an index-time error."""

from __future__ import annotations

import pytest

from app.core.llm_doclabels import LabelCache, LlmDocLabeler, doc_schema, parse_doc_labels
from app.testing import failing_chat, fake_chat


def test_the_schema_allows_only_the_taxonomys_leaves(taxonomy) -> None:  # type: ignore[no-untyped-def]
    items = doc_schema(taxonomy)["json_schema"]["schema"]["properties"]["labels"]["items"]
    assert items["enum"] == taxonomy.leaf_ids and "售后" not in items["enum"]


def test_replies_are_validated(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert parse_doc_labels('```json\n{"labels": ["屏幕", "编造"]}\n```', taxonomy) == ["屏幕"]
    assert parse_doc_labels('{"labels": ["售后", "屏幕"]}', taxonomy) == ["屏幕"]  # leaves only
    for bad in ('{"labels": "屏幕"}', '{"labels": ["编造"]}', "不知道", '{"labels": [1]}'):
        with pytest.raises(ValueError):
            parse_doc_labels(bad, taxonomy)


def test_a_doc_is_asked_once_and_reindexing_reads_the_cache(taxonomy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = LabelCache(tmp_path / "llm_doc_labels.sqlite")
    labeler = LlmDocLabeler(fake_chat("无效输出", '{"labels": ["屏幕", "保修政策"]}'), taxonomy, cache, model="m1")
    assert labeler("屏幕保修", "碎屏免费换一次。") == ["屏幕", "保修政策"] and labeler.asked == 2  # one retry
    cache.close()
    again = LlmDocLabeler(failing_chat(), taxonomy, LabelCache(tmp_path / "llm_doc_labels.sqlite"), model="m1")
    assert again("屏幕保修", "碎屏免费换一次。") == ["屏幕", "保修政策"] and (again.asked, again.cached) == (0, 1)
    assert again("屏幕保修", "改过的正文。") is None and again.asked == 1  # new content: asked; unreachable: None
    other_model = LlmDocLabeler(fake_chat('{"labels": ["电池"]}'), taxonomy, again.cache, model="m2")
    assert other_model("屏幕保修", "碎屏免费换一次。") == ["电池"]  # the cache key names the model


def test_invalid_twice_gives_no_opinion(taxonomy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    labeler = LlmDocLabeler(fake_chat("x", "y"), taxonomy, LabelCache(tmp_path / "c.sqlite"))
    assert labeler("t", "正文") is None and labeler.asked == 2
