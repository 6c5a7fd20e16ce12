"""Points per day as an inline SVG bar chart, drawn on the server (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

WIDTH, HEIGHT = 400, 180
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 24


def _num(value: float) -> str:
    """Coordinates with at most two decimals, without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _step(span: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that cuts `span` into at most 4 steps."""
    scale = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * scale
            if -(-span // step) <= 4:
                return step
        scale *= 10


def _ticks(low: int, high: int) -> list[int]:
    """Round values from at or below `low` to at or above `high`, 0 among them."""
    step = _step(high - low)
    first = (low // step) * step
    last = -(-high // step) * step
    return list(range(first, last + 1, step))


def points_chart(
    series: Sequence[tuple[date, int]],
    *,
    label: str,
    empty: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """An `<svg>` with one bar per day (below the axis for a day that lost points), the
    value axis with round ticks, and the first, middle and last dates under the bars.

    `label` is the chart's accessible name and `empty` the text shown when no day has
    points; both are escaped here, like everything drawn.
    """
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    values = [points for _, points in series]
    low, high = min([0, *values]), max([0, *values])
    if low == high:  # nothing but zeros: a scale of 0..1 keeps the axis readable
        high = low + 1
    ticks = _ticks(low, high)
    low, high = ticks[0], ticks[-1]

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' width="100%" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    parts.append('<g class="axis">')
    for tick in ticks:
        ty = _num(y(tick))
        parts.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{ty}" y2="{ty}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{ty}" text-anchor="end" dominant-baseline="middle">'
            f"{tick}</text>"
        )
    zero = _num(y(0))
    parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{zero}" y2="{zero}" class="zero"/>')
    parts.append("</g>")
    if series:
        slot = plot_w / len(series)
        bar = max(slot * 0.8, 0.5)
        parts.append('<g class="bars">')
        for i, (day, points) in enumerate(series):
            if points == 0:
                continue
            top, bottom = sorted((y(points), y(0)))
            x = LEFT + i * slot + (slot - bar) / 2
            kind = "gain" if points > 0 else "loss"
            parts.append(
                f'<rect class="{kind}" x="{_num(x)}" y="{_num(top)}" width="{_num(bar)}"'
                f' height="{_num(max(bottom - top, 0.5))}">'
                f"<title>{day.isoformat()}: {points:+d}</title></rect>"
            )
        parts.append("</g>")
        marks = sorted({0, len(series) // 2, len(series) - 1})
        parts.append('<g class="dates">')
        for i in marks:
            anchor = (
                "start" if i == 0 and len(marks) > 1 else "end" if i == marks[-1] else "middle"
            )
            if len(marks) == 1:
                anchor = "middle"
            x = LEFT + i * slot + slot / 2
            if anchor == "start":
                x = LEFT
            elif anchor == "end":
                x = width - RIGHT
            parts.append(
                f'<text x="{_num(x)}" y="{height - 6}" text-anchor="{anchor}">'
                f"{series[i][0].isoformat()}</text>"
            )
        parts.append("</g>")
    if not any(values):
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}"'
            f' text-anchor="middle">{escape(empty)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
