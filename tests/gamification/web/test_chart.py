"""The points chart: one bar per day at the right height, round value ticks, date marks,
and the awkward series (none, one day, all flat, losses), with every label escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from plugins.gamification.web.chart import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, points_chart

SVG = "{http://www.w3.org/2000/svg}"
DAY = date(2026, 3, 1)


def series(*points: int) -> list[tuple[date, int]]:
    return [(DAY + timedelta(days=i), p) for i, p in enumerate(points)]


def draw(points: list[tuple[date, int]], label: str = "Points", empty: str = "None") -> ET.Element:
    svg = points_chart(points, label=label, empty=empty)
    return ET.fromstring(svg)  # well-formed XML, or this raises


def bars(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}rect"))


def ticks(root: ET.Element) -> list[str]:
    axis = root.find(f"{SVG}g[@class='axis']")
    assert axis is not None
    return [t.text or "" for t in axis.iter(f"{SVG}text")]


def dates(root: ET.Element) -> list[str]:
    group = root.find(f"{SVG}g[@class='dates']")
    return [] if group is None else [t.text or "" for t in group.iter(f"{SVG}text")]


def test_each_day_with_points_is_a_bar_as_tall_as_its_points() -> None:
    root = draw(series(10, 0, 40, 20))
    found = bars(root)
    assert [b.get("class") for b in found] == ["gain", "gain", "gain"]
    heights = [float(b.get("height", 0)) for b in found]
    assert heights[1] == pytest.approx(4 * heights[0])
    assert heights[2] == pytest.approx(2 * heights[0])
    plot = HEIGHT - TOP - BOTTOM
    assert heights[1] == pytest.approx(plot)  # 40 is the top tick: the full height
    assert [b.find(f"{SVG}title").text for b in found] == [  # type: ignore[union-attr]
        "2026-03-01: +10",
        "2026-03-03: +40",
        "2026-03-04: +20",
    ]
    xs = [float(b.get("x", 0)) for b in found]
    assert LEFT <= xs[0] < xs[1] < xs[2] < WIDTH - RIGHT


def test_the_value_axis_has_round_ticks_from_zero() -> None:
    assert ticks(draw(series(116, 3))) == ["0", "50", "100", "150"]
    assert ticks(draw(series(4))) == ["0", "1", "2", "3", "4"]


def test_losses_go_below_the_zero_line() -> None:
    root = draw(series(30, -20))
    gain, loss = bars(root)
    assert loss.get("class") == "loss"
    zero = root.find(f"{SVG}g[@class='axis']/{SVG}line[@class='zero']")
    assert zero is not None
    zero_y = float(zero.get("y1", 0))
    assert float(gain.get("y", 0)) + float(gain.get("height", 0)) == pytest.approx(zero_y)
    assert float(loss.get("y", 0)) == pytest.approx(zero_y)
    assert ticks(root) == ["-20", "0", "20", "40"]


def test_the_first_middle_and_last_days_are_marked() -> None:
    root = draw(series(*range(90)))
    assert dates(root) == ["2026-03-01", "2026-04-15", "2026-05-29"]
    assert len(bars(root)) == 89  # the first day has 0 points: no bar


def test_one_day_is_one_centred_bar_and_one_date() -> None:
    root = draw(series(7))
    [bar] = bars(root)
    centre = float(bar.get("x", 0)) + float(bar.get("width", 0)) / 2
    assert centre == pytest.approx(LEFT + (WIDTH - LEFT - RIGHT) / 2)
    assert dates(root) == ["2026-03-01"]


@pytest.mark.parametrize("points", [[], series(0, 0, 0)], ids=["no days", "flat zeros"])
def test_no_points_draws_the_axis_and_says_so(points: list[tuple[date, int]]) -> None:
    root = draw(points, empty="Nothing yet")
    assert bars(root) == []
    assert ticks(root) == ["0", "1"]
    empty = root.find(f"{SVG}text[@class='empty']")
    assert empty is not None
    assert empty.text == "Nothing yet"


def test_a_flat_series_has_equal_bars() -> None:
    heights = {b.get("height") for b in bars(draw(series(5, 5, 5, 5)))}
    assert len(heights) == 1


def test_labels_are_escaped() -> None:
    hostile = "<script>alert(\"x\")</script> & 'q'"
    svg = points_chart(series(1), label=hostile, empty=hostile)
    assert "<script>" not in svg
    root = ET.fromstring(svg)
    assert root.get("aria-label") == hostile
    assert root.find(f"{SVG}title").text == hostile  # type: ignore[union-attr]
    svg = points_chart([], label="x", empty=hostile)
    assert "&lt;script&gt;" in svg
    assert re.search(r"<text class=\"empty\"[^>]*>&lt;script&gt;", svg)
