"""The admin JSON API and its form fallbacks, through Flask's test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from conftest import backdate
from job_queue import job_queue, utcnow

JSON = {"Accept": "application/json"}
RUN_ROUTES = ("/admin/run_scraper", "/admin/run_payback", "/admin/run_miles_and_more")


def test_run_scraper_answers_202_with_a_queued_job(app: Flask, client) -> None:
    response = client.post("/admin/run_scraper", headers=JSON)
    assert response.status_code == 202
    assert set(response.json) == {"job_id", "status"}
    assert response.json["status"] == "queued"
    job_id = response.json["job_id"]

    status = client.get(f"/admin/job_status/{job_id}")
    assert status.status_code == 200 and status.json["status"] == "queued"

    with app.app_context():
        assert job_queue.run_pending() == 1
    done = client.get(f"/admin/job_status/{job_id}").json
    assert done["status"] == "completed"
    assert done["result"] == {"added": 24, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    assert done["progress_percent"] == 100
    assert any("Seite 4 von 4" in entry["message"] for entry in done["messages"])


def test_curl_without_accept_header_gets_json(client) -> None:
    response = client.post("/admin/run_scraper", headers={"Accept": "*/*"})
    assert response.status_code == 202 and response.json["status"] == "queued"


def test_form_post_redirects_back_with_a_flash_message(app: Flask, admin_client) -> None:
    browser_accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    response = admin_client.post(
        "/admin/run_scraper", headers=browser_accept, data={"csrf_token": admin_client.csrf_token}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin")
    page = admin_client.get("/admin").get_data(as_text=True)
    assert "Run Example Scraper: Job" in page and "gestartet" in page


@pytest.mark.parametrize(
    "route, scraper",
    [("/admin/run_payback", "scrape_payback"), ("/admin/run_miles_and_more", "scrape_miles_and_more")],
)
def test_each_run_route_queues_its_scraper(app: Flask, client, route: str, scraper: str) -> None:
    response = client.post(route, headers=JSON)
    assert response.status_code == 202 and response.json["status"] == "queued"
    with app.app_context():
        assert job_queue.get_job(response.json["job_id"]).func_path.endswith(f":{scraper}")


@pytest.mark.parametrize("route", RUN_ROUTES)
def test_run_routes_refuse_get_with_a_json_error(client, route: str) -> None:
    response = client.get(route)
    assert response.status_code == 405
    assert response.is_json and "GET" in response.json["error"]
    assert "POST" in response.headers["Allow"]


def test_job_status_of_an_unknown_job_is_404_json(client) -> None:
    response = client.get("/admin/job_status/does-not-exist")
    assert response.status_code == 404
    assert "does-not-exist" in response.json["error"]


def test_unknown_admin_route_is_404_json(client) -> None:
    response = client.get("/admin/nope")
    assert response.status_code == 404 and "error" in response.json


def test_jobs_lists_the_newest_twenty_newest_first(app: Flask, client) -> None:
    with app.app_context():
        ids = [job_queue.enqueue(lambda job: None) for _ in range(25)]
    listed = client.get("/admin/jobs").json
    assert [job["id"] for job in listed] == list(reversed(ids))[:20]
    assert all(job["status"] == "queued" for job in listed)


def _age_all_finished_jobs(app: Flask, hours: float) -> None:
    past = utcnow() - timedelta(hours=hours)
    with app.app_context():
        for job in job_queue.get_all_jobs():
            backdate(app, job.id, completed_at=past)


def test_clear_old_jobs_defaults_to_24_hours(app: Flask, client) -> None:
    with app.app_context():
        for _ in range(3):
            job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
        queued = job_queue.enqueue(lambda job: None)
    _age_all_finished_jobs(app, hours=30)
    response = client.post("/admin/maintenance/clear_old_jobs")
    assert response.status_code == 200 and response.json == {"removed": 3}
    assert [job["id"] for job in client.get("/admin/jobs").json] == [queued]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query_string": {"max_age_hours": "1.5"}},
        {"data": {"max_age_hours": "1.5"}},
        {"json": {"max_age_hours": 1.5}},
    ],
)
def test_clear_old_jobs_takes_max_age_hours_from_query_form_or_json(app: Flask, client, kwargs) -> None:
    with app.app_context():
        job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
    _age_all_finished_jobs(app, hours=1)
    assert client.post("/admin/maintenance/clear_old_jobs", **kwargs).json == {"removed": 0}
    _age_all_finished_jobs(app, hours=2)
    assert client.post("/admin/maintenance/clear_old_jobs", **kwargs).json == {"removed": 1}


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "nan", "inf", "", "1e999"])
def test_clear_old_jobs_rejects_malformed_max_age_hours(app: Flask, client, bad: str) -> None:
    with app.app_context():
        job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
    _age_all_finished_jobs(app, hours=100)
    response = client.post("/admin/maintenance/clear_old_jobs", query_string={"max_age_hours": bad})
    assert response.status_code == 400
    assert "max_age_hours" in response.json["error"]
    assert len(client.get("/admin/jobs").json) == 1  # nothing was removed


@pytest.mark.parametrize("bad", [True, "zwei", None, [1], {"h": 1}, -3])
def test_clear_old_jobs_rejects_malformed_json(client, bad) -> None:
    response = client.post("/admin/maintenance/clear_old_jobs", json={"max_age_hours": bad})
    if bad is None:  # an explicit null means "use the default"
        assert response.status_code == 200
    else:
        assert response.status_code == 400 and "error" in response.json


def test_clear_old_jobs_refuses_get(client) -> None:
    response = client.get("/admin/maintenance/clear_old_jobs")
    assert response.status_code == 405 and "error" in response.json


def test_admin_page_shows_counts_jobs_and_log_after_a_run(app: Flask, client, admin_client) -> None:
    page = admin_client.get("/admin").get_data(as_text=True)
    assert "Run Example Scraper" in page and "Noch keine Scraper-Läufe" in page
    client.post("/admin/run_scraper", headers=JSON)
    with app.app_context():
        job_queue.run_pending()
    page = admin_client.get("/admin").get_data(as_text=True)
    assert '<td class="count">24</td>' in page
    assert "COMPLETED" in page
    assert "erfolgreich" in page and "24 Shops gelesen" in page


def test_admin_page_resumes_the_unfinished_job(app: Flask, admin_client) -> None:
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: None)
    page = admin_client.get("/admin").get_data(as_text=True)
    assert f'data-job-id="{job_id}"' in page


def test_public_page_lists_shops_per_programme(app: Flask, client) -> None:
    assert "Noch keine Shops erfasst" in client.get("/").get_data(as_text=True)
    client.post("/admin/run_scraper", headers=JSON)
    with app.app_context():
        job_queue.run_pending()
    page = client.get("/").get_data(as_text=True)
    assert "Schuhhaus Beispiel" in page and "2 Punkte pro 1 €" in page
    assert "Beispieldaten" in page
