"""The worker survives what a job can throw at it, and keeps working."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from conftest import backdate
from database import utcnow
from job_queue import JobQueue, JobStatus, job_queue

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



def _wait_for(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_job_claimed_again_in_the_same_process_keeps_its_new_handle_when_the_old_run_ends(
        make_app, database_url: str) -> None:
    """A lease that ended once (an outage, a stall) lets another process requeue the job while it runs here.

    This process's second worker claims it again; when the first execution
    ends, the second must still be heartbeated, not swept a third time.
    """
    app = make_app(DATABASE_URL=database_url, JOBS_LEASE_SECONDS=2.0, JOBS_WORKER_THREADS=2,
                   JOBS_FLUSH_INTERVAL=0.05, JOBS_POLL_INTERVAL=0.05)
    state = app.extensions["job_queue"]
    with app.app_context():
        job_id = job_queue.enqueue("job_helpers:longer_each_attempt", args=(1.5,))
        job_queue.start()
        assert _wait_for(lambda: job_id in state.running)
        first = state.running[job_id]
        backdate(app, job_id, lease_until=utcnow())  # the lease ran out once ...
        assert state.store.sweep(own_token="another process") == (1, 0)  # ... and another process requeued it
        assert _wait_for(lambda: state.running.get(job_id) not in (None, first))  # claimed again here
        second = state.running[job_id]
        assert _wait_for(lambda: first.settled)  # the first run has ended (its outcome not written), the second runs on
        assert state.running.get(job_id) is second  # still heartbeated, and job_status still reads it here
        time.sleep(2.5)  # longer than a lease
        assert state.store.get(job_id).attempts == 2  # nobody swept it again
        assert _wait_for(lambda: state.store.get(job_id).status.is_final, 15)
        record = state.store.get(job_id)
    assert record.status is JobStatus.COMPLETED and record.attempts == 2, record
