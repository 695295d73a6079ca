"""The site's time zone (``DISPLAY_TIMEZONE``), in which people read and enter times; the JSON API stays UTC.

Every page shows a time through ``local_time`` (server) or through the zone
this module puts on the page for ``static/admin.js`` (``Intl.DateTimeFormat``
with ``timeZone``), so a time reads the same before and after a reload,
whatever zone the browser is in.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Union
from zoneinfo import ZoneInfo

from flask import Flask, current_app

DATE_TIME = "%d.%m.%Y %H:%M:%S"
CLOCK = "%H:%M:%S"


def site_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])


def local(moment: Union[datetime, str, None]) -> Optional[datetime]:
    """A stored moment (naive UTC, aware, or the API's ISO 8601 text) in the site's zone."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(site_zone())


def local_time(moment: Union[datetime, str, None], pattern: str = DATE_TIME) -> str:
    """A template filter: a stored moment as people read it, in the site's zone."""
    shown = local(moment)
    return shown.strftime(pattern) if shown is not None else "–"


def clock_time(moment: Union[datetime, str, None]) -> str:
    """A template filter: only the time of day (job messages), as admin.js writes it."""
    return local_time(moment, CLOCK)


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(clock_time, "clock_time")
    app.add_template_global(lambda: current_app.config["DISPLAY_TIMEZONE"], "display_zone")
