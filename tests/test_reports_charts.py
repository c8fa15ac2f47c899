"""The line chart builder the report pages and the lead page share: its scale, its
axes and its text alternative, with no database."""

from __future__ import annotations

import pytest

from reports.charts import REPORT_FRAME, Frame, line_chart


def coords(points: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points.split())]


def test_lines_share_one_scale_from_zero_to_the_highest_value():
    chart = line_chart(
        slug="cohorts",
        title="Cohorts",
        labels=["2025-01", "2025-02", "2025-03"],
        series=[("Leads", [0, 50, 100]), ("MQL", [10, 20, 30])],
    )

    leads, mql = chart.series
    # The plot runs from x 48 to 604 and from y 16 (100) down to 200 (0).
    assert coords(leads.points) == [(48.0, 200.0), (326.0, 108.0), (604.0, 16.0)]
    assert coords(mql.points)[0] == (48.0, pytest.approx(181.6))
    assert [text for _, text in chart.y_ticks] == ["0", "50", "100"]
    first = chart.x_labels[0]
    assert (first.x, first.text, first.anchor) == (48.0, "2025-01", "middle")
    assert (leads.tone, mql.tone) == ("tone-1", "tone-2")
    assert leads.dots[1][2] == "Leads 2025-02: 50"
    assert (
        chart.desc
        == "Leads: 2025-01 0, 2025-02 50, 2025-03 100. MQL: 2025-01 10, 2025-02 20, 2025-03 30."
    )
    assert (chart.width, chart.height, chart.plot_right, chart.plot_bottom) == (640, 240, 604, 200)
    assert not chart.empty


def test_a_ceiling_and_negative_values_widen_the_scale():
    frame = Frame(width=600, height=160, left=24, right=24, top=24, bottom=24)

    chart = line_chart(
        slug="7",
        title="Score",
        labels=["a", "b"],
        series=[("Score", [-28, 40])],
        frame=frame,
        ceiling=84,
        guides=[(84, "hot 84", "tone-hot")],
        ends=("Mar 3", "now"),
        y_ticks=False,
        dots=False,
    )

    # From -28 at the bottom (136) to the ceiling 84 at the top (24): 1 point per pixel.
    assert coords(chart.series[0].points) == [(24.0, 136.0), (576.0, 68.0)]
    (hot,) = chart.guides
    assert (hot.y, hot.label, hot.tone) == (24.0, "hot 84", "tone-hot")
    assert [(t.x, t.y, t.text, t.anchor) for t in chart.x_labels] == [
        (24, 154, "Mar 3", "start"),
        (576, 154, "now", "end"),
    ]
    assert chart.y_ticks == []
    assert chart.series[0].dots == []


def test_an_empty_series_draws_nothing_and_says_so():
    chart = line_chart(slug="cohorts", title="Cohorts", labels=[], series=[("Leads", [])])

    assert chart.empty
    assert chart.desc == "No data."
    assert chart.series[0].points == ""
    assert chart.x_labels == []


def test_one_point_sits_at_the_left_edge_at_the_top_of_its_scale():
    chart = line_chart(slug="one", title="One", labels=["2025-03"], series=[("Leads", [5])])

    assert coords(chart.series[0].points) == [(REPORT_FRAME.left, REPORT_FRAME.top)]
    assert [text for _, text in chart.y_ticks] == ["0", "2.5", "5"]
    assert chart.desc == "Leads: 2025-03 5."


def test_all_zero_values_lie_on_the_baseline():
    chart = line_chart(slug="zero", title="Zero", labels=["a", "b"], series=[("Leads", [0, 0])])

    assert coords(chart.series[0].points) == [(48.0, 200.0), (604.0, 200.0)]
    assert [text for _, text in chart.y_ticks] == ["0", "0.5", "1"]
