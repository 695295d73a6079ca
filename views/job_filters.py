"""The filters of the job history and of ``GET /admin/jobs``, read and checked from a query string.

``name`` (a job kind), ``status``, ``since`` and ``until`` (ISO 8601: a date
alone is that day in the site's zone, a time without offset is UTC),
``limit`` (1 to 200) and ``before`` (a job id: the page after it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Mapping, Optional
from zoneinfo import ZoneInfo

from job_queue import JobStatus
from views.errors import quoted
from views.ids import is_job_id

MAX_LIMIT, DEFAULT_LIMIT = 200, 20
FILTER_KEYS = ("name", "status", "since", "until", "limit", "before")


class FilterError(ValueError):
    """A filter value that cannot be used; the message is German and quotes the value briefly."""


@dataclass(frozen=True)
class JobFilters:
    name: Optional[str] = None
    status: Optional[str] = None
    since: Optional[datetime] = None  # naive UTC
    until: Optional[datetime] = None  # naive UTC, exclusive
    limit: int = DEFAULT_LIMIT
    before: Optional[str] = None

    def query(self, **changes: object) -> dict[str, str]:
        """The filters as query parameters (for links to other pages of the same list)."""
        values = {"name": self.name, "status": self.status, "before": self.before,
                  "limit": None if self.limit == DEFAULT_LIMIT else str(self.limit)}
        values.update(changes)  # type: ignore[arg-type]
        return {key: value for key, value in values.items() if value}


def _moment(raw: str, key: str, zone: ZoneInfo, end_of_day: bool) -> datetime:
    text = raw.strip()
    try:
        if len(text) == 10:  # a date alone: that whole day in the site's zone
            day = date.fromisoformat(text) + (timedelta(days=1) if end_of_day else timedelta())
            local = datetime.combine(day, time(0), tzinfo=zone)
            return local.astimezone(timezone.utc).replace(tzinfo=None)
        moment = datetime.fromisoformat(text)
        return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
    except ValueError as error:
        raise FilterError(f"{key} muss ein Datum oder eine Zeit nach ISO 8601 sein, nicht {quoted(raw)}") from error
    except OverflowError as error:  # the first or last day of the calendar, moved to UTC or to the next day
        raise FilterError(f"{key} liegt zu nah am Anfang oder Ende des Kalenders: {quoted(raw)}") from error


def parse_filters(args: Mapping[str, str], kinds: set[str], zone: ZoneInfo) -> JobFilters:
    """Check every filter; raise ``FilterError`` naming the first one that is wrong."""
    name = (args.get("name") or "").strip() or None
    if name is not None and name not in kinds:
        raise FilterError(f"name muss eine der Job-Arten {', '.join(sorted(kinds))} sein, nicht {quoted(name)}")
    status = (args.get("status") or "").strip() or None
    if status is not None and status not in {item.value for item in JobStatus}:
        raise FilterError(f"status muss einer von {', '.join(item.value for item in JobStatus)} sein, "
                          f"nicht {quoted(status)}")
    raw_limit = (args.get("limit") or "").strip()
    if raw_limit and not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT):
        raise FilterError(f"limit muss eine ganze Zahl von 1 bis {MAX_LIMIT} sein, nicht {quoted(raw_limit)}")
    since = _moment(args["since"], "since", zone, False) if args.get("since") else None
    until = _moment(args["until"], "until", zone, True) if args.get("until") else None
    if since and until and since >= until:
        raise FilterError("since muss vor until liegen")
    before = (args.get("before") or "").strip() or None
    if before is not None and not is_job_id(before):
        raise FilterError(f"before muss die ID eines Jobs sein, nicht {quoted(before)}")
    return JobFilters(name, status, since, until, int(raw_limit) if raw_limit else DEFAULT_LIMIT, before)


def has_filters(args: Mapping[str, str]) -> bool:
    return any(args.get(key) for key in FILTER_KEYS)
