"""What the CLI commands share: the comma-separated options' parsing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.cli.common import comma_list

ITEM = st.text(alphabet="ab屏幕0.1-_", min_size=1, max_size=8)


def test_comma_list() -> None:
    assert comma_list("屏幕，账号, 退款 ,,") == ["屏幕", "账号", "退款"]  # a full-width comma counts too
    assert comma_list(" 0.01,0.1 ") == ["0.01", "0.1"]
    assert comma_list("") == [] and comma_list(" , ，") == []


@given(
    items=st.lists(ITEM, max_size=6), seps=st.lists(st.sampled_from([",", "，", " , ", ",,"]), min_size=6, max_size=6)
)
def test_comma_list_gives_back_the_items_joined_by_any_separators(items: list[str], seps: list[str]) -> None:
    text = "".join(item + sep for item, sep in zip(items, seps, strict=False))
    assert comma_list(text) == items
