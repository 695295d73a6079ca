"""Cron schedules per job kind: each due time enqueued exactly once, one catch-up after a downtime.

Expressions are read by croniter in the site's time zone (``SCHEDULE_TIMEZONE``,
Europe/Berlin by default), so "0 3 * * *" means three o'clock in Berlin in
summer and in winter. Every process that runs jobs looks for due schedules
(``JOBS_SCHEDULE_INTERVAL``); a due time is claimed by advancing the
schedule's ``last_due_at`` with a compare-and-set, so of several processes or
machines exactly one enqueues it. Only the latest due time counts: after a
downtime that covered five, the scraper runs once, not five times. A kind
that is still queued or running is not enqueued again (one run per kind).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import CroniterBadDateError, croniter
from sqlalchemy.engine import Engine

from database import utcnow
from jobs.schema import schedule_table

log = logging.getLogger(__name__)

SKIPPED, ENQUEUED = "übersprungen (läuft schon)", "gestartet"


class ScheduleError(ValueError):
    """A schedule that cannot be saved; the message is German, for the admin."""


@dataclass(frozen=True)
class Schedule:
    kind: str
    expression: str
    enabled: bool
    last_due_at: Optional[datetime]  # naive UTC
    next_run: Optional[datetime]  # naive UTC; None when disabled


def validate(expression: str) -> str:
    """Return the expression tidied, or raise ``ScheduleError`` saying what is wrong."""
    tidy = " ".join(expression.split())
    if len(tidy.split(" ")) != 5 or not croniter.is_valid(tidy):
        raise ScheduleError(
            f"„{tidy[:80]}“ ist kein gültiger Cron-Ausdruck: fünf Felder erwartet "
            "(Minute Stunde Tag Monat Wochentag), z. B. „30 3 * * *“ für täglich 3:30 Uhr"
        )
    try:  # valid, yet maybe never due (31 February): croniter gives up after some years of searching
        croniter(tidy, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as error:
        raise ScheduleError(f"„{tidy[:80]}“ wird nie fällig: kein Kalendertag passt zu allen Feldern") from error
    return tidy


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(zone)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def latest_due(expression: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The last due time at or before ``now`` (naive UTC in and out)."""
    probe = _local(now, zone)
    if croniter.match(expression, probe.replace(second=0, microsecond=0)):
        return _utc(probe.replace(second=0, microsecond=0))
    return _utc(croniter(expression, probe).get_prev(datetime))


def next_due(expression: str, after: datetime, zone: ZoneInfo) -> datetime:
    """The first due time after ``after`` (naive UTC in and out)."""
    return _utc(croniter(expression, _local(after, zone)).get_next(datetime))


class Schedules:
    """The ``job_schedule`` table of one database."""

    def __init__(self, engine: Engine, zone_name: str) -> None:
        self.engine = engine
        self.zone = ZoneInfo(zone_name)

    def ensure(self, kind: str, expression: str, enabled: bool) -> None:
        """Create the schedule of ``kind`` from the config unless it exists (the admin's edits stay)."""
        expression = validate(expression)
        with self.engine.connect() as conn:
            exists = conn.execute(sa.select(schedule_table.c.kind).where(schedule_table.c.kind == kind)).first()
        if exists is not None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(schedule_table.insert().values(
                    kind=kind, expression=expression, enabled=enabled, updated_at=utcnow(),
                    last_due_at=latest_due(expression, utcnow(), self.zone) if enabled else None))
        except sa.exc.IntegrityError:
            pass  # another process created it first

    def list(self, now: Optional[datetime] = None) -> list[Schedule]:
        now = now or utcnow()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(schedule_table).order_by(schedule_table.c.kind)).all()
        return [Schedule(row.kind, row.expression, row.enabled, row.last_due_at,
                         next_due(row.expression, now, self.zone) if row.enabled else None) for row in rows]

    def update(self, kind: str, expression: str, enabled: bool, now: Optional[datetime] = None) -> Schedule:
        """Change a schedule; a bad expression raises ``ScheduleError`` and nothing is saved.

        Enabling starts from now: due times before it are not caught up.
        """
        expression = validate(expression)
        now = now or utcnow()
        values = {"expression": expression, "enabled": enabled, "updated_at": now,
                  "last_due_at": latest_due(expression, now, self.zone)}
        with self.engine.begin() as conn:
            changed = conn.execute(schedule_table.update().where(schedule_table.c.kind == kind).values(**values))
        if changed.rowcount != 1:
            raise ScheduleError(f"Für „{kind}“ gibt es keinen Zeitplan.")
        return next(schedule for schedule in self.list(now) if schedule.kind == kind)

    def run_due(self, submit: Callable[[str], object], now: Optional[datetime] = None) -> list[tuple[str, str]]:
        """Enqueue every schedule that is due at ``now``; return (kind, what happened) for each."""
        now = now or utcnow()
        done = []
        for schedule in self.list(now):
            if not schedule.enabled:
                continue
            due = latest_due(schedule.expression, now, self.zone)
            if schedule.last_due_at is not None and due <= schedule.last_due_at:
                continue
            if not self._claim(schedule, due):
                continue  # another process took this due time
            if schedule.last_due_at is None:
                continue  # never ran: start counting from now
            submission = submit(schedule.kind)
            outcome = SKIPPED if getattr(submission, "existing", False) else ENQUEUED
            log.info("schedule %s (%s) due %s UTC: %s", schedule.kind, schedule.expression, due, outcome)
            done.append((schedule.kind, outcome))
        return done

    def _claim(self, schedule: Schedule, due: datetime) -> bool:
        """Advance ``last_due_at`` to ``due`` if nobody did: exactly one process wins each due time."""
        column = schedule_table.c.last_due_at
        last = column.is_(None) if schedule.last_due_at is None else column == schedule.last_due_at
        with self.engine.begin() as conn:
            result = conn.execute(schedule_table.update()
                                  .where(schedule_table.c.kind == schedule.kind, last)
                                  .values(last_due_at=due))
        return result.rowcount == 1
