"""Job history with filters and paging, a page per job, statistics that survive clear_old_jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

import pytest
from flask import Flask

from conftest import API_TOKEN, backdate, logged_in_client
from database import utcnow
from job_queue import JobKind, job_queue
from jobs.kinds import if_retryable

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}


def _ok(job, added: int) -> dict:
    return {"added": added, "updated": 1, "deactivated": 0, "unparsed_rates": 2}


def _broken(job) -> None:
    raise ValueError("kaputt")


def _make_jobs(app: Flask) -> dict[str, list[str]]:
    """14 jobs: 10 of kind "alpha" (8 completed, 2 failed), 4 of "beta" (completed); oldest first."""
    ids: dict[str, list[str]] = {"alpha": [], "beta": []}
    with app.app_context():
        for name in ("alpha", "beta"):
            job_queue.register_kind(JobKind(name, name.title(), "job_helpers:slow_job", one_at_a_time=False,
                                            retry_if=if_retryable))
        for index in range(14):
            name = "alpha" if index < 10 else "beta"
            func = _broken if index in (3, 7) else (lambda job, i=index: _ok(job, i))
            ids[name].append(job_queue.enqueue(func, name=name))
            job_queue.run_pending()
    return ids


@pytest.fixture
def history_app(make_app, database_url: str) -> Flask:
    return make_app(DATABASE_URL=database_url)


def test_filters_and_paging_over_a_page_boundary(history_app: Flask) -> None:
    ids = _make_jobs(history_app)
    client = history_app.test_client()
    newest_alpha_first = list(reversed(ids["alpha"]))

    page_one = client.get("/admin/jobs?name=alpha&limit=4", headers=JSON).json
    page_two = client.get(f"/admin/jobs?name=alpha&limit=4&before={page_one[-1]['id']}", headers=JSON).json
    page_three = client.get(f"/admin/jobs?name=alpha&limit=4&before={page_two[-1]['id']}", headers=JSON).json
    pages = [job["id"] for job in page_one + page_two + page_three]
    assert pages == newest_alpha_first  # no job twice, none left out, newest first
    assert [len(page) for page in (page_one, page_two, page_three)] == [4, 4, 2]
    assert all(job["name"] == "alpha" and job["label"] == "Alpha" for job in page_one)

    failed = client.get("/admin/jobs?status=failed", headers=JSON).json
    assert [job["id"] for job in failed] == [ids["alpha"][7], ids["alpha"][3]]
    assert client.get("/admin/jobs?name=beta&status=completed", headers=JSON).json[0]["id"] == ids["beta"][-1]

    with history_app.app_context():  # a date range: only the jobs of the last hour
        for job_id in ids["alpha"][:5]:
            backdate(history_app, job_id, created_at=utcnow() - timedelta(days=3))
    since = (utcnow() - timedelta(hours=1)).isoformat(timespec="seconds")
    recent = client.get(f"/admin/jobs?name=alpha&since={since}&limit=200", headers=JSON).json
    assert [job["id"] for job in recent] == newest_alpha_first[:5]
    # without filters: the seed's newest 20, in the seed's shape
    assert [job["id"] for job in client.get("/admin/jobs", headers=JSON).json] == \
        list(reversed(ids["alpha"] + ids["beta"]))


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit muss"), ("limit=201", "limit muss"), ("status=fertig", "status muss"),
    ("name=gibtsnicht", "name muss"), ("since=gestern", "since muss"),
    ("since=2026-11-02&until=2026-11-01", "since muss vor until"),
])
def test_bad_filters_answer_400_naming_the_filter(history_app: Flask, query: str, message: str) -> None:
    response = history_app.test_client().get(f"/admin/jobs?{query}", headers=JSON)
    assert response.status_code == 400 and message in response.json["error"]


def test_the_history_page_pages_and_links_every_job(history_app: Flask) -> None:
    ids = _make_jobs(history_app)
    client = logged_in_client(history_app)
    page = client.get("/admin/history?name=alpha&limit=4").get_data(as_text=True)
    for job_id in list(reversed(ids["alpha"]))[:4]:
        assert f"/admin/jobs/{job_id}" in page
    assert "Ältere Jobs" in page and f"before={list(reversed(ids['alpha']))[3]}" in page


def test_a_job_page_shows_the_whole_log(history_app: Flask) -> None:
    def chatty(job) -> str:
        for step in range(30):
            job.add_message(f"Schritt {step:02d}")
        return "fertig"

    with history_app.app_context():
        job_id = job_queue.enqueue(chatty)
        job_queue.run_pending()
    page = logged_in_client(history_app).get(f"/admin/jobs/{job_id}", headers={"Accept": "text/html"}).get_data(
        as_text=True)
    assert all(f"Schritt {step:02d}" in page for step in range(30))
    assert "COMPLETED" in page and "1 von" in page
    assert history_app.test_client().get(f"/admin/jobs/{job_id}", headers=JSON).json["result"] == "fertig"


def test_statistics_are_the_same_after_clear_old_jobs(history_app: Flask) -> None:
    ids = _make_jobs(history_app)
    client = history_app.test_client()
    with history_app.app_context():
        for job_id in ids["alpha"] + ids["beta"]:
            job = job_queue.get_job(job_id)
            backdate(history_app, job_id, completed_at=job.completed_at.replace(tzinfo=None) - timedelta(days=2),
                     started_at=job.started_at.replace(tzinfo=None) - timedelta(days=2))
    assert client.get("/admin/stats", headers=JSON).status_code == 200
    with history_app.app_context():
        stats_before = job_queue.statistics()
        removed = job_queue.clear_old_jobs(max_age_hours=24)
        stats_after = job_queue.statistics()
    assert removed == 14
    alpha = stats_before.figures["alpha"][7]
    assert (alpha.runs, alpha.completed, alpha.failed) == (10, 8, 2)
    assert alpha.totals["added"] == sum(index for index in range(10) if index not in (3, 7))
    for name in ("alpha", "beta"):
        for days in (7, 30, 365):
            assert stats_after.figures[name][days] == stats_before.figures[name][days], (name, days)
    assert stats_after.runs == []  # the figures now come from the folded days alone


def test_stats_json_has_the_figures_per_scraper_and_window(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    with app.app_context():
        job_queue.submit("example")
        job_queue.run_pending()
    stats = app.test_client().get("/admin/stats", headers=JSON).json
    example = stats["scrapers"]["example"]
    assert example["label"] == "Beispiel-Bonusprogramm"
    week = example["windows"]["7"]
    assert week["runs"] == 1 and week["success_rate"] == 1.0 and week["median_duration_seconds"] > 0
    assert week["per_run"]["added"] == 24
    assert stats["shops_per_programme"]["Beispiel-Bonusprogramm"][0]["shops"] == 24
