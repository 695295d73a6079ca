"""What happened to jobs: a page per job, the history with filters, statistics with charts.

``/admin/jobs/<id>`` follows a running job live (the console's script) and
keeps a finished one's whole log; ``/admin/history`` lists jobs with the same
filters as ``GET /admin/jobs``; ``/admin/stats`` shows per scraper runs,
success rate, durations and shops over time (also as JSON).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template, request

from job_queue import JobStatus, job_queue
from jobs.stats import WINDOWS_DAYS
from models import APPLIED_OUTCOMES, ScrapeRun, db
from scrapers.registry import SCRAPERS, SCRAPERS_BY_NAME
from views.access import wants_json
from views.admin_guard import guard_admin_blueprint
from views.job_filters import FilterError, JobFilters, parse_filters
from views.stats_charts import durations_chart, shops_chart
from views.timezone import site_zone

bp = Blueprint("history", __name__, url_prefix="/admin")

API_ENDPOINTS = {"history.job_page", "history.stats"}
STATS_RUN_LIMIT = 200  # shop counts over time: the newest applied runs of all programmes


guard_admin_blueprint(bp, API_ENDPOINTS)


@bp.get("/jobs/<job_id:job_id>")
def job_page(job_id: str) -> Any:
    """One job: status, timings, attempts, result, error and its whole message log (JSON: its to_dict)."""
    job = job_queue.get_job(job_id)
    if job is None:
        abort(404, description=f"Job {job_id} nicht gefunden")
    if wants_json():
        return job.to_dict()
    return render_template("job.html", job=job, snapshot=job.to_dict())


@bp.get("/history")
def history() -> Any:
    """Jobs with filters (scraper, status, date range), newest first, a page at a time."""
    kinds = {kind.name: kind.label for kind in job_queue.kinds()}
    try:
        filters = parse_filters(request.args, set(kinds), site_zone())
        error = None
    except FilterError as problem:
        filters, error = JobFilters(), str(problem)
    # One more than a page: whether an older page exists, without counting.
    jobs = job_queue.find_jobs(**{**vars(filters), "limit": filters.limit + 1}, with_messages=False)
    older = jobs[filters.limit - 1].id if len(jobs) > filters.limit else None
    return render_template("history.html", jobs=jobs[:filters.limit], filters=filters, kinds=kinds,
                           statuses=[status.value for status in JobStatus], older=older, error=error,
                           form=request.args), 400 if error else 200


def _shops_over_time() -> dict[str, list]:
    runs = db.session.execute(
        sa.select(ScrapeRun.scraper, ScrapeRun.finished_at, ScrapeRun.shops_offered)
        .where(ScrapeRun.outcome.in_(APPLIED_OUTCOMES), ScrapeRun.shops_offered.is_not(None),
               ScrapeRun.finished_at.is_not(None))
        .order_by(ScrapeRun.finished_at.desc()).limit(STATS_RUN_LIMIT)
    ).all()
    series: dict[str, list] = defaultdict(list)
    for scraper, finished, offered in runs:
        label = SCRAPERS_BY_NAME[scraper].label if scraper in SCRAPERS_BY_NAME else scraper
        series[label].append((finished, offered))
    return dict(series)


@bp.get("/stats")
def stats() -> Any:
    """Per scraper over 7, 30 and 365 days; charts of the last runs and of shops per programme."""
    statistics = job_queue.statistics()
    shops = _shops_over_time()
    if wants_json():
        return jsonify({
            "windows_days": list(WINDOWS_DAYS),
            "scrapers": {spec.name: {"label": spec.label,
                                     "windows": {str(days): figures.as_json() for days, figures in
                                                 statistics.figures.get(spec.name, {}).items()}}
                         for spec in SCRAPERS},
            "shops_per_programme": {label: [{"at": moment.isoformat() + "+00:00", "shops": count}
                                            for moment, count in sorted(values)]
                                    for label, values in shops.items()},
        })
    charts = {spec.name: durations_chart(statistics.last_runs(spec.name)) for spec in SCRAPERS}
    return render_template("stats.html", scrapers=SCRAPERS, figures=statistics.figures, windows=WINDOWS_DAYS,
                           charts=charts, shops=shops_chart(shops), zone=current_app.config["DISPLAY_TIMEZONE"])
