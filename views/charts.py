"""Server-rendered SVG data for a shop's rate history (no JS, no CDN).

Each programme's base rate becomes a step line of euro per 100 € over time;
rates whose value cannot be computed leave gaps and are listed as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from models import BASE
from views.comparison import ProgrammeOffer, euro_per_100

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 32


@dataclass
class Series:
    label: str
    css_class: str
    segments: list[str]  # SVG polyline "points" strings, one per unbroken run
    markers: list[tuple[float, float]]  # where each rate began: visible even for one day


@dataclass
class Tick:
    position: float
    label: str


@dataclass
class HistoryChart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_bottom: int = HEIGHT - BOTTOM


def _euro(value: float) -> str:
    return f"{value:.2f} €".replace(".", ",")


def history_chart(
    offers: list[ProgrammeOffer], euro_per_unit: dict[str, Optional[float]], now: datetime
) -> Optional[HistoryChart]:
    """Build the chart of base-rate history, or None when nothing can be plotted."""
    runs: list[tuple[ProgrammeOffer, list[tuple[datetime, datetime, float]]]] = []
    for offer in offers:
        steps = []
        for rate in offer.shop.rates:
            value = euro_per_100(rate, euro_per_unit.get(offer.programme.slug))
            if rate.kind == BASE and value is not None:
                steps.append((rate.valid_from, rate.valid_to or now, value))
        runs.append((offer, steps))
    all_steps = [step for _, steps in runs for step in steps]
    if not all_steps:
        return None
    start = min(step[0] for step in all_steps)
    end = max(now, max(step[1] for step in all_steps))
    if end - start < timedelta(days=1):
        start = end - timedelta(days=1)
    top = max(step[2] for step in all_steps) * 1.15 or 1.0

    def x(moment: datetime) -> float:
        return LEFT + (moment - start) / (end - start) * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - value / top * (HEIGHT - TOP - BOTTOM)

    series = []
    for index, (offer, steps) in enumerate(runs):
        segments, current, last_end, markers = [], [], None, []
        for valid_from, valid_to, value in sorted(steps):
            if last_end is not None and valid_from > last_end + timedelta(seconds=1):
                segments.append(current)  # a gap where the value was unknown
                current = []
            current += [(x(valid_from), y(value)), (x(valid_to), y(value))]
            markers.append((round(x(valid_from), 1), round(y(value), 1)))
            last_end = valid_to
        if current:
            segments.append(current)
        series.append(
            Series(
                label=offer.programme.name,
                css_class=f"series-{index % 4}",
                segments=[" ".join(f"{px:.1f},{py:.1f}" for px, py in seg) for seg in segments],
                markers=markers,
            )
        )
    y_ticks = [Tick(y(top * share), _euro(top * share)) for share in (0, 0.5, 1)]
    x_ticks = [Tick(x(moment), moment.strftime("%d.%m.%Y")) for moment in (start, end)]
    return HistoryChart(WIDTH, HEIGHT, series, y_ticks, x_ticks)
