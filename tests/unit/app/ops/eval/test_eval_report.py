"""The SVG chart helpers shared by `eval classify` and `labelgate report`."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from app.ops.eval.report import line_chart, nice_top, stacked_bars


@given(st.floats(1e-3, 1e7))
def test_nice_top_is_a_round_cover(value: float) -> None:
    top = nice_top(value)
    assert value <= top * (1 + 1e-9) <= value * 1.5 * (1 + 1e-9)  # candidates grow by at most 1.5x
    quarter = top / 4  # each tick step is 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten
    mantissa = quarter / 10 ** math.floor(math.log10(quarter) + 1e-9)
    assert any(abs(mantissa - m) < 1e-6 for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10))


def test_line_chart_leaves_gaps_and_marks_lone_points() -> None:
    svg = line_chart(
        {"a<b": [(0.5, 0.2), (1.5, 0.4), (2.5, None), (3.5, 0.3), (4.5, None)]},
        xlabel="time",
        ylabel="share",
        xlim=(0, 5),
        xticks=[(0.5, "03-01"), (4.5, "03-05")],
        width=600,
    )
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # [0.2, 0.4] a line, [0.3] alone a dot
    assert 'width="600"' in svg and "a&lt;b" in svg and "03-05" in svg
    assert "a&lt;b" not in line_chart({"a<b": [(0, 1), (1, 1)]}, xlabel="x", ylabel="y", legend=False)


def test_stacked_bars_stack_and_scale_to_a_round_top() -> None:
    svg = stacked_bars(
        {"auto": [3, 0, 5], "review": [2, 1, 28]},
        xlabels=["a", "b", "c"],
        xlabel="t",
        ylabel="n",
        band=(2, 3),
        legend=False,
    )
    assert svg.count('fill="#1f77b4"') == 2 and svg.count('fill="#d62728"') == 3  # zero segments are not drawn
    assert ">40<" in svg and 'fill="#fff3c4"' in svg  # top 33 → 40; the shaded band
    assert "c review: 28" in svg
