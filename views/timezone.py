"""The site's time zone, in which people read and enter times (the JSON API stays UTC)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo

from flask import Flask, current_app


def site_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SCHEDULE_TIMEZONE"])


def local(moment: Optional[datetime]) -> Optional[datetime]:
    """A stored moment (naive UTC, or aware) in the site's zone."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(site_zone())


def local_time(moment: Optional[datetime], pattern: str = "%d.%m.%Y %H:%M:%S") -> str:
    """A template filter: a stored moment as people read it, in the site's zone."""
    shown = local(moment)
    return shown.strftime(pattern) if shown is not None else "–"


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
