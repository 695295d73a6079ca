"""The worker survives what a job can throw at it, and keeps working."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from job_queue import JobQueue, JobStatus

WAIT = 10


@pytest.fixture
def queue(tmp_path):
    app = Flask("robustness")
    app.config.update(JOBS_AUTOSTART=False, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    queue = JobQueue(app)
    with app.app_context():
        queue.start()
        yield queue
        assert queue.stop(timeout=WAIT)


def run_and_wait(queue: JobQueue, func) -> str:
    done = threading.Event()
    job_id = queue.enqueue(func)
    queue.enqueue(lambda job: done.set())
    assert done.wait(WAIT)
    return job_id


def test_a_job_calling_sys_exit_fails_and_the_worker_goes_on(queue: JobQueue) -> None:
    def leaves(job):
        raise SystemExit(3)

    job = queue.get_job(run_and_wait(queue, leaves))
    assert job.status is JobStatus.FAILED and job.error == "SystemExit: 3"
    assert queue.is_running()


def test_a_result_the_database_cannot_hold_fails_the_job(queue: JobQueue) -> None:
    job = queue.get_job(run_and_wait(queue, lambda job: {(1, 2): "tuple keys are not JSON"}))
    assert job.status is JobStatus.FAILED and "TypeError" in job.error
    assert queue.is_running()


def test_basic_credentials_do_not_switch_off_csrf(app, admin_client) -> None:
    response = admin_client.post("/admin/logout", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert response.status_code == 400  # refused for lack of a CSRF token, still logged in
    assert admin_client.get("/admin", headers={"Accept": "text/html"}).status_code == 200
