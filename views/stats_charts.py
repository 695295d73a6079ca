"""Server-rendered SVG data for /admin/stats: the last runs' durations and outcomes, shops over time.

As the shop page's chart (``views/charts.py``): plain coordinates for a
template, no JavaScript, no third-party code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from views.charts import Tick
from views.timezone import local

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30
LAST_RUNS = 20


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    outcome: str  # completed | failed | cancelled: its colour
    title: str  # German tooltip: when, outcome, how long


@dataclass
class Line:
    label: str
    css_class: str
    points: str  # SVG polyline points
    markers: list[tuple[float, float]]


@dataclass
class Chart:
    width: int
    height: int
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    bars: list[Bar]
    lines: list[Line]
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_bottom: int = HEIGHT - BOTTOM


OUTCOMES = {"completed": "erfolgreich", "failed": "fehlgeschlagen", "cancelled": "abgebrochen"}


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min".replace(".", ",")


def durations_chart(runs: list[tuple]) -> Optional[Chart]:
    """Bars for the last runs of one job name: (status, started, completed), oldest first."""
    timed = [(status, started, completed) for status, started, completed in runs[-LAST_RUNS:]
             if started is not None and completed is not None]
    if not timed:
        return None
    longest = max((completed - started).total_seconds() for _, started, completed in timed) * 1.15 or 1.0
    slot = (WIDTH - LEFT - RIGHT) / LAST_RUNS
    bars = []
    for index, (status, started, completed) in enumerate(timed):
        seconds = (completed - started).total_seconds()
        height = max(1.0, seconds / longest * (HEIGHT - TOP - BOTTOM))
        when = local(started)
        bars.append(Bar(round(LEFT + index * slot + slot * 0.15, 1), round(HEIGHT - BOTTOM - height, 1),
                        round(slot * 0.7, 1), round(height, 1), status.value,
                        f"{when:%d.%m. %H:%M} Uhr: {OUTCOMES.get(status.value, status.value)}, {_seconds(seconds)}"))
    y_ticks = [Tick(round(HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM), 1), _seconds(longest * share))
               for share in (0, 0.5, 1)]
    first, last = local(timed[0][1]), local(timed[-1][1])
    x_ticks = [Tick(LEFT, f"{first:%d.%m.}"), Tick(WIDTH - RIGHT, f"{last:%d.%m.}")]
    return Chart(WIDTH, HEIGHT, y_ticks, x_ticks, bars, [])


def shops_chart(series: dict[str, list[tuple[datetime, int]]]) -> Optional[Chart]:
    """One line per programme: shops offered by each applied run, over time."""
    points = [point for values in series.values() for point in values]
    if not points:
        return None
    start, end = min(moment for moment, _ in points), max(moment for moment, _ in points)
    span = max((end - start).total_seconds(), 1.0)
    top = max(count for _, count in points) * 1.15 or 1.0

    def x(moment: datetime) -> float:
        return round(LEFT + (moment - start).total_seconds() / span * (WIDTH - LEFT - RIGHT), 1)

    def y(count: float) -> float:
        return round(HEIGHT - BOTTOM - count / top * (HEIGHT - TOP - BOTTOM), 1)

    lines = []
    for index, (label, values) in enumerate(sorted(series.items())):
        coordinates = [(x(moment), y(count)) for moment, count in sorted(values)]
        lines.append(Line(label, f"series-{index % 4}", " ".join(f"{px},{py}" for px, py in coordinates),
                          coordinates))
    y_ticks = [Tick(y(top * share), f"{top * share:.0f}") for share in (0, 0.5, 1)]
    x_ticks = [Tick(LEFT, f"{local(start):%d.%m.%Y}"), Tick(WIDTH - RIGHT, f"{local(end):%d.%m.%Y}")]
    return Chart(WIDTH, HEIGHT, y_ticks, x_ticks, [], lines)
