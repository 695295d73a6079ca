"""/admin/schedules: each scraper's cron schedule, switched on and off and edited by the admin.

Expressions are checked by croniter before anything is saved; the page shows
each schedule's next run in the site's time zone.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, url_for

from jobs.schedules import Schedule, ScheduleError, Schedules
from scrapers.registry import SCRAPERS_BY_NAME
from views.access import wants_json
from views.admin_guard import guard_admin_blueprint
from views.errors import quoted
from views.submitted import submitted_data, submitted_flag
from views.timezone import local

bp = Blueprint("schedules", __name__, url_prefix="/admin/schedules")

API_ENDPOINTS = {"schedules.index", "schedules.update"}


guard_admin_blueprint(bp, API_ENDPOINTS)


def _schedules() -> Schedules:
    return current_app.extensions["job_queue"].schedules


def _local(moment: Optional[datetime]) -> Optional[datetime]:
    return local(moment)


def _as_json(schedule: Schedule) -> dict[str, Any]:
    def iso(moment: Optional[datetime]) -> Optional[str]:
        return moment.replace(tzinfo=timezone.utc).isoformat() if moment else None

    return {"name": schedule.kind, "expression": schedule.expression, "enabled": schedule.enabled,
            "next_run": iso(schedule.next_run), "last_due_at": iso(schedule.last_due_at)}


@bp.get("")
def index() -> Any:
    """List the schedules with their next runs (JSON for API clients)."""
    schedules = _schedules().list()
    if wants_json():
        return jsonify([_as_json(schedule) for schedule in schedules])
    return render_template("schedules.html", schedules=schedules, local=_local,
                           zone=current_app.config["SCHEDULE_TIMEZONE"], labels=SCRAPERS_BY_NAME,
                           display_zone=current_app.config["DISPLAY_TIMEZONE"])


@bp.post("/<name>")
def update(name: str) -> Any:
    """Change one schedule; a bad expression is refused with a German message and nothing is saved."""
    data = submitted_data()
    expression, enabled = data.get("expression", ""), submitted_flag(data, "enabled")
    if not isinstance(expression, str):
        abort(400, description=f"expression muss ein Text sein, nicht {quoted(expression)}")
    try:
        schedule = _schedules().update(name, expression[:200], enabled)
    except ScheduleError as error:
        if wants_json():
            return jsonify(error=str(error)), 400
        flash(str(error), "error")
        return redirect(url_for("schedules.index"))
    if wants_json():
        return jsonify(_as_json(schedule))
    state = "aktiv" if schedule.enabled else "aus"
    flash(f"Zeitplan für {_label(name)} gespeichert ({state}).", "info")
    return redirect(url_for("schedules.index"))


def _label(name: str) -> str:
    spec = SCRAPERS_BY_NAME.get(name)
    return spec.label if spec else name
