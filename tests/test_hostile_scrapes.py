"""Hostile scraped data never jams a scraper: the job ends, says why, and the next run starts."""

from __future__ import annotations

import time
from typing import Callable

from flask import Flask

from conftest import API_TOKEN
from job_queue import JobStatus, job_queue
from models import RUN_FAILED, ScrapeRun, db
from scripted_server import Reply, ScriptedServer

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
NUL_CATALOGUE = b'{"totalResultSize":1,"digitalShopListItem":[{"partner":{"partnerShortName":"evil\\u0000id"}}]}'


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_nul_in_a_catalogue_fails_the_scrape_naming_the_value_and_the_next_run_starts(
        make_app, database_url: str, server: ScriptedServer) -> None:
    server.route("/digital-shops", Reply(body=NUL_CATALOGUE, headers={"Content-Type": "application/json"}))
    app = make_app(DATABASE_URL=database_url, SCRAPER_SOURCES="online", SCRAPER_ATTEMPTS=1,
                   PAYBACK_CATALOGUE_URL=f"{server.url}/digital-shops", JOBS_FLUSH_INTERVAL=0.05,
                   SCRAPER_ALLOWED_HOSTS=server.url.removeprefix("http://"))
    client = app.test_client()
    with app.app_context():
        job_queue.start()
    first = client.post("/admin/run_payback", headers=JSON).json["job_id"]
    with app.app_context():
        assert _wait(lambda: job_queue.get_job(first).status.is_final), job_queue.get_job(first).to_dict()
        job = job_queue.get_job(first)
        run = db.session.scalar(db.select(ScrapeRun).where(ScrapeRun.job_id == first))
    assert job.status is JobStatus.FAILED, job.to_dict()
    assert "partnerDisplayName" in job.error and "\\x00" in job.error  # the odd value, named visibly
    assert "\x00" not in job.error and all("\x00" not in m["message"] for m in job.messages)
    assert run.outcome == RUN_FAILED and "\x00" not in run.message
    again = client.post("/admin/run_payback", headers=JSON)
    assert again.status_code == 202 and again.json["job_id"] != first  # not stuck: a new run starts
