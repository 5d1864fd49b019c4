"""Charts drawn on the server as SVG: bars (stacked or side by side) and lines.

No script and no style attribute (the content security policy forbids inline styles):
colours come from classes in dashboard.css, every text is escaped, and each chart is an
image with a title and a description for screen readers, followed by its numbers in a
table for those who would rather read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 210
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 34
MAX_TICKS = 8


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def nice_ceiling(value: float, whole: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above value (1 for nothing);
    `whole`: counts, whose four grid steps must be whole numbers (4 at least)."""
    if whole:  # a nice step, whole, four times
        return float(max(1, math.ceil(nice_ceiling(value / 4)))) * 4
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _axis(maximum: float, formatter: Callable[[float], str]) -> list[str]:
    """The horizontal grid lines and their labels: 0, 1/4, ... of the maximum."""
    inner = HEIGHT - TOP - BOTTOM
    parts = []
    for step in range(5):
        value = maximum * step / 4
        y = TOP + inner - inner * step / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(formatter(value))}</text>')
    return parts


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / MAX_TICKS))
    parts = []
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = LEFT + slot * (index + 0.5)
        parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    return parts


def _frame(title: str, description: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
        f'<title>{escape(title)}</title><desc>{escape(description)}</desc>'
        + "".join(body) + "</svg>")


def _legend(series: Sequence[Series]) -> Markup:
    items = "".join(f'<li><span class="swatch s{index}"></span>{escape(each.name)}</li>'
                    for index, each in enumerate(series))
    return Markup(f'<ul class="legend">{items}</ul>')


def bars(title: str, labels: Sequence[str], series: Sequence[Series], *, stacked: bool = True,
         formatter: Callable[[float], str] = lambda v: f"{v:,.0f}", whole: bool = True
         ) -> Markup:
    """Bars per label: the series stacked on each other, or side by side (`whole`: the
    values are counts)."""
    totals = [sum(each.values[i] or 0 for each in series) if stacked
              else max((each.values[i] or 0 for each in series), default=0)
              for i in range(len(labels))]
    maximum = nice_ceiling(max(totals, default=0), whole=whole)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(1, len(labels))
    body = _axis(maximum, formatter)
    for i, label in enumerate(labels):
        base = 0.0
        for index, each in enumerate(series):
            value = each.values[i] or 0
            if not value:
                continue
            height = inner_h * value / maximum
            if stacked:
                x, width = LEFT + slot * i + slot * 0.12, slot * 0.76
                y = TOP + inner_h - inner_h * base / maximum - height
                base += value
            else:
                width = slot * 0.76 / len(series)
                x = LEFT + slot * i + slot * 0.12 + width * index
                y = TOP + inner_h - height
            body.append(f'<rect class="s{index}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                        f'height="{height:.1f}"><title>{escape(label)}: {escape(each.name)} '
                        f'{escape(formatter(value))}</title></rect>')
    body += _x_labels(labels, slot)
    description = "; ".join(f"{label}: {formatter(total)}" for label, total
                            in zip(labels, totals, strict=True) if total)
    return _frame(title, description or "nothing in this period", body) + _legend(series)


def lines(title: str, labels: Sequence[str], series: Sequence[Series], *,
          formatter: Callable[[float], str] = lambda v: f"{v:,.0f}",
          maximum: float | None = None) -> Markup:
    """A line per series over the labels; a missing value breaks the line (a dot alone)."""
    top = maximum or nice_ceiling(max((v for each in series for v in each.values
                                       if v is not None), default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(1, len(labels))
    body = _axis(top, formatter)
    for index, each in enumerate(series):
        points: list[tuple[float, float]] = []
        runs: list[list[tuple[float, float]]] = []
        for i, value in enumerate(each.values):
            if value is None:
                if points:
                    runs.append(points)
                points = []
                continue
            points.append((LEFT + slot * (i + 0.5), TOP + inner_h - inner_h * value / top))
            body.append(f'<circle class="s{index}" cx="{points[-1][0]:.1f}" '
                        f'cy="{points[-1][1]:.1f}" r="2.5"><title>{escape(labels[i])}: '
                        f'{escape(each.name)} {escape(formatter(value))}</title></circle>')
        if points:
            runs.append(points)
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                body.append(f'<polyline class="line s{index}" points="{path}"/>')
    body += _x_labels(labels, slot)
    description = "; ".join(
        f"{each.name}: " + ", ".join(f"{label} {formatter(v)}" for label, v
                                     in zip(labels, each.values, strict=True) if v is not None)
        for each in series)
    return _frame(title, description, body) + _legend(series)
