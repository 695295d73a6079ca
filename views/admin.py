"""The admin job console: start scrapers, watch their jobs, accept held runs, housekeeping.

Run routes answer JSON (``202`` with the job id) to API clients and the page's
JS, and redirect with a flash message to a plain form post, so the page also
works without JavaScript. Every error under ``/admin/`` is JSON: this
blueprint's handler, and app.py's for URLs that match no route.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from job_queue import JobStatus, job_queue
from models import RUN_HELD, Programme, ScrapeRun, Shop, db
from scrapers.held_runs import AcceptRefused, RunNotFound, accept_run as accept_held_run
from scrapers.registry import SCRAPERS, ScraperSpec
from scrapers.sources import offline_mode
from views.access import wants_json
from views.admin_guard import guard_admin_blueprint
from views.errors import quoted
from views.job_filters import FilterError, has_filters, parse_filters
from views.submitted import submitted_data
from views.timezone import site_zone

bp = Blueprint("admin", __name__, url_prefix="/admin")

RECENT_JOBS = 20
RECENT_RUNS = 20
# clear_old_jobs's max_age_hours: from one hour to ten years.
MIN_AGE_HOURS, MAX_AGE_HOURS = 1.0, 10 * 365 * 24.0

# Routes API clients may call with a bearer token; the maintenance route only so.
API_ENDPOINTS = {
    "admin.job_status", "admin.jobs", "admin.clear_old_jobs", "admin.cancel_job",
    "admin.runs", "admin.accept_run",
    *(f"admin.{spec.endpoint}" for spec in SCRAPERS),
}
TOKEN_ONLY_ENDPOINTS = {"admin.clear_old_jobs"}


guard_admin_blueprint(bp, API_ENDPOINTS, TOKEN_ONLY_ENDPOINTS)


def _start(spec: ScraperSpec):
    """Queue the scraper, or follow the run of it that is already queued or running."""
    submission = job_queue.submit(spec.name)
    if wants_json():
        if submission.existing:
            return jsonify(job_id=submission.job_id, status=submission.status.value, existing=True), 200
        return jsonify(job_id=submission.job_id, status=submission.status.value), 202
    if submission.existing:
        flash(f"{spec.button}: läuft bereits (Job {submission.job_id})", "info")
    else:
        flash(f"{spec.button}: Job {submission.job_id} gestartet", "info")
    return redirect(url_for("admin.index"))


def _register_run_route(spec: ScraperSpec) -> None:
    bp.add_url_rule(f"/{spec.endpoint}", endpoint=spec.endpoint, view_func=lambda: _start(spec),
                    methods=["POST"])


for _spec in SCRAPERS:
    _register_run_route(_spec)


@bp.get("")
def index() -> str:
    """Render the console: buttons, live job box, recent jobs, counts, logs."""
    jobs = job_queue.get_all_jobs(limit=RECENT_JOBS)
    # Every unfinished job gets its progress box, oldest first: the page follows them all.
    active_jobs = [job for job in reversed(jobs) if not job.status.is_final]
    # One query for both counts per programme: active shops, and how many of them are samples.
    shop_counts = db.session.execute(
        sa.select(Programme, sa.func.count(Shop.id),
                  sa.func.count(Shop.id).filter(Shop.is_sample))
        .outerjoin(Shop, sa.and_(Shop.programme_id == Programme.id, Shop.active))
        .group_by(Programme.id)
        .order_by(Programme.id)
    ).all()
    runs = _recent_runs()
    return render_template(
        "admin.html",
        scrapers=SCRAPERS,
        jobs=jobs,
        active_jobs=active_jobs,
        shop_counts=shop_counts,
        runs=runs,
        held_runs=[run for run in runs if run.outcome == RUN_HELD],
        offline=offline_mode(),
    )


def _recent_runs() -> list[ScrapeRun]:
    """The newest runs and every held one, however old (one statement): a held run must not scroll away."""
    newest = (sa.select(ScrapeRun.id)
              .order_by(ScrapeRun.started_at.desc(), ScrapeRun.id.desc()).limit(RECENT_RUNS))
    return list(db.session.scalars(
        sa.select(ScrapeRun)
        .where(sa.or_(ScrapeRun.id.in_(newest), ScrapeRun.outcome == RUN_HELD))
        .order_by(ScrapeRun.started_at.desc(), ScrapeRun.id.desc())
    ))


def conditional_json(payload: dict[str, Any]) -> Response:
    """JSON with an ``ETag``; ``304 Not Modified`` (no body) when the caller already has it.

    The console polls every running job twice a second; most answers repeat
    the last one, and a 304 spares encoding, sending and reading it again.
    ``no-cache``: caches must ask every time, never answer from a stale copy.
    """
    response = jsonify(payload)
    response.add_etag()
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.get("/job_status/<job_id:job_id>")
def job_status(job_id: str) -> Response:
    """Return one job in the seed's JSON shape."""
    job = job_queue.get_job(job_id)
    if job is None:
        abort(404, description=f"Job {quoted(job_id)} nicht gefunden")
    return conditional_json(job.to_dict())


@bp.post("/jobs/<job_id:job_id>/cancel")
def cancel_job(job_id: str) -> Any:
    """Cancel a job: a queued one at once, a running one at its next progress step; 409 when it ended."""
    before = job_queue.cancel(job_id)
    if before is None:
        abort(404, description=f"Job {job_id} nicht gefunden")
    if before.is_final:
        abort(409, description=f"Job {job_id} ist bereits beendet ({before.value}) und lässt sich nicht abbrechen")
    if before is JobStatus.QUEUED:
        answer, code, note = {"job_id": job_id, "status": JobStatus.CANCELLED.value}, 200, "abgebrochen"
    else:
        answer, code, note = {"job_id": job_id, "status": before.value, "cancel_requested": True}, 202, \
            "wird beim nächsten Schritt abgebrochen"
    if wants_json():
        return jsonify(answer), code
    flash(f"Job {job_id} {note}.", "info")
    return redirect(url_for("admin.index"))


@bp.get("/jobs")
def jobs() -> Any:
    """Return the newest 20 jobs, newest first; or those matching the history's filters (``views/job_filters.py``)."""
    if not has_filters(request.args):
        return jsonify([job.to_dict() for job in job_queue.get_all_jobs(limit=RECENT_JOBS)])
    try:
        filters = parse_filters(request.args, {kind.name for kind in job_queue.kinds()}, site_zone())
    except FilterError as error:
        abort(400, description=str(error))
    return jsonify([job.to_dict() for job in job_queue.find_jobs(**vars(filters))])


def _max_age_hours() -> float:
    raw = submitted_data().get("max_age_hours")
    if raw is None:
        return 24.0
    try:
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not MIN_AGE_HOURS <= value <= MAX_AGE_HOURS:  # also false for nan
        abort(400, description=f"max_age_hours muss eine Zahl von {MIN_AGE_HOURS:g} bis {MAX_AGE_HOURS:g} "
                               f"sein (1 Stunde bis 10 Jahre), nicht {quoted(raw)}")
    return value


@bp.post("/maintenance/clear_old_jobs")
def clear_old_jobs() -> dict[str, int]:
    """Forget finished jobs older than ``max_age_hours`` (default 24); for cron."""
    return {"removed": job_queue.clear_old_jobs(max_age_hours=_max_age_hours())}


_RUN_FIELDS = ("id", "scraper", "job_id", "outcome", "added", "updated", "deactivated", "message", "is_sample",
               "complete", "shops_seen", "shops_offered", "rates_total", "rates_understood", "promotions",
               "accepted_by")
_RUN_TIMES = ("started_at", "finished_at", "accepted_at")


def _run_dict(run: ScrapeRun) -> dict[str, Any]:
    times = {name: getattr(run, name) for name in _RUN_TIMES}
    return {**{name: getattr(run, name) for name in _RUN_FIELDS},
            **{name: moment.isoformat() if moment else None for name, moment in times.items()}}


@bp.get("/runs")
def runs() -> Any:
    """Return the scrape log as the page shows it: the newest runs and every held one, newest first."""
    return jsonify([_run_dict(run) for run in _recent_runs()])


@bp.post("/runs/<id:run_id>/accept")
def accept_run(run_id: int) -> Any:
    """Apply a run the drift guard held (404 unknown, 409 not held, accepted already or superseded)."""
    client = g.get("api_client")
    accepted_by = f"API-Token {client}" if client else current_user.username
    try:
        run, stored = accept_held_run(run_id, accepted_by)
    except (RunNotFound, AcceptRefused) as exc:
        if wants_json():
            abort(404 if isinstance(exc, RunNotFound) else 409, description=str(exc))
        flash(str(exc), "error")
        return redirect(url_for("admin.index"))
    if wants_json():
        return _run_dict(run)
    flash(f"Lauf {run.id} ({run.scraper}) übernommen: {stored.added} neu, {stored.updated} aktualisiert, "
          f"{stored.deactivated} deaktiviert", "info")
    return redirect(url_for("admin.index"))
