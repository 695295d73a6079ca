"""Statistics of finished jobs per name: runs, success rate, durations, the sums of their results.

They come from two sources that never overlap: the finished jobs still in the
job table, and the days ``clear_old_jobs`` folded into ``job_daily_stats``
before removing their jobs (``fold``). So clearing old jobs changes no figure.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Optional

from jobs.status import JobStatus

WINDOWS_DAYS = (7, 30, 365)


@dataclass
class Day:
    """One day of one job name, folded: counts per outcome, each run's duration, result sums."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    durations: list[float] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    last_success_at: Optional[datetime] = None

    def add_run(self, status: JobStatus, started: Optional[datetime], completed: Optional[datetime],
                result: Any) -> None:
        if status is JobStatus.COMPLETED:
            self.completed += 1
            if completed is not None and (self.last_success_at is None or completed > self.last_success_at):
                self.last_success_at = completed
        elif status is JobStatus.FAILED:
            self.failed += 1
        else:
            self.cancelled += 1
        if started is not None and completed is not None:
            self.durations.append(round((completed - started).total_seconds(), 3))
        if isinstance(result, dict):
            for key, value in result.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.totals[key] = self.totals.get(key, 0) + value

    def merge(self, other: "Day") -> "Day":
        totals = dict(self.totals)
        for key, value in other.totals.items():
            totals[key] = totals.get(key, 0) + value
        last = max((moment for moment in (self.last_success_at, other.last_success_at) if moment), default=None)
        return Day(self.completed + other.completed, self.failed + other.failed, self.cancelled + other.cancelled,
                   self.durations + other.durations, totals, last)


def fold(runs: Iterable[tuple]) -> dict[tuple[date, str], Day]:
    """(name, status, started, completed, result) of finished runs, folded per (UTC day, name)."""
    days: dict[tuple[date, str], Day] = {}
    for name, status, started, completed, result in runs:
        when = completed or started
        if when is None:
            continue
        days.setdefault((when.date(), name), Day()).add_run(status, started, completed, result)
    return days


@dataclass
class Figures:
    """What the statistics page shows for one job name over one window."""

    runs: int
    completed: int
    failed: int
    cancelled: int
    success_rate: Optional[float]  # completed / runs, None without runs
    median_duration: Optional[float]  # seconds
    p95_duration: Optional[float]
    last_success_at: Optional[datetime]
    totals: dict[str, float]
    per_run: dict[str, float]  # totals / runs

    def as_json(self) -> dict[str, Any]:
        def iso(moment: Optional[datetime]) -> Optional[str]:
            return moment.isoformat() + "+00:00" if moment else None

        return {"runs": self.runs, "completed": self.completed, "failed": self.failed,
                "cancelled": self.cancelled, "success_rate": self.success_rate,
                "median_duration_seconds": self.median_duration, "p95_duration_seconds": self.p95_duration,
                "last_success_at": iso(self.last_success_at), "totals": self.totals, "per_run": self.per_run}


def _p95(durations: list[float]) -> Optional[float]:
    if not durations:
        return None
    ordered = sorted(durations)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def figures(day: Day) -> Figures:
    runs = day.completed + day.failed + day.cancelled
    return Figures(
        runs=runs, completed=day.completed, failed=day.failed, cancelled=day.cancelled,
        success_rate=round(day.completed / runs, 4) if runs else None,
        median_duration=round(statistics.median(day.durations), 3) if day.durations else None,
        p95_duration=_p95(day.durations), last_success_at=day.last_success_at,
        totals={key: round(value, 3) for key, value in sorted(day.totals.items())},
        per_run={key: round(value / runs, 2) for key, value in sorted(day.totals.items())} if runs else {},
    )


def job_statistics(runs: list[tuple], folded: list[tuple], now: datetime,
                   windows: Iterable[int] = WINDOWS_DAYS) -> dict[str, dict[int, Figures]]:
    """Per job name and window (days), the figures of the runs finished in it."""
    per_day = fold(runs)
    for day, name, completed, failed, cancelled, durations, totals, last_success in folded:
        per_day[(day, name)] = per_day.get((day, name), Day()).merge(
            Day(completed, failed, cancelled, list(durations), dict(totals), last_success))
    names = sorted({name for _, name in per_day})
    result: dict[str, dict[int, Figures]] = {}
    for name in names:
        result[name] = {}
        for window in windows:
            first_day = (now - timedelta(days=window)).date()
            total = Day()
            for (day, day_name), figures_of_day in per_day.items():
                if day_name == name and day > first_day:
                    total = total.merge(figures_of_day)
            result[name][window] = figures(total)
    return result


@dataclass
class JobStatistics:
    """The figures per job name and window, and the finished runs they came from (oldest first)."""

    figures: dict[str, dict[int, Figures]]
    runs: list[tuple]  # (name, status, started, completed, result) still in the job table

    def last_runs(self, name: str) -> list[tuple]:
        """(status, started, completed) of the runs of ``name``, oldest first."""
        mine = [(status, started, completed) for run_name, status, started, completed, _ in self.runs
                if run_name == name]
        return sorted(mine, key=lambda run: run[2] or run[1] or datetime.min)
