"""Unit tests of the in-process JobQueue and Job."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from flask import Flask, current_app

from conftest import backdate, pg_test_url, reset_database
from job_queue import Job, JobQueue, JobStatus, utcnow

WAIT = 10  # seconds: generous upper bound for a thread to reach a point
EXTENSION_KEYS = {"attempt", "max_attempts", "retry_at", "name", "label"}


@pytest.fixture(params=["sqlite", "postgresql"])
def flask_app(request, tmp_path) -> Flask:
    """A bare app whose queue lives on SQLite or on the PostgreSQL test database."""
    if request.param == "postgresql":
        url = pg_test_url()
        reset_database(url)
    else:
        url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    app = Flask("queue-test")
    app.config["JOBS_AUTOSTART"] = False
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    return app


@pytest.fixture
def queue(flask_app: Flask):
    queue = JobQueue(flask_app)
    with flask_app.app_context():
        yield queue
        assert queue.stop(timeout=WAIT)
        flask_app.extensions["job_queue"].store.engine.dispose()


def enqueue_signal(queue: JobQueue) -> threading.Event:
    """Enqueue a job that sets an event: FIFO means all before it have run."""
    done = threading.Event()
    queue.enqueue(lambda job: done.set())
    return done


def test_status_transitions_of_a_successful_job(queue: JobQueue) -> None:
    entered, release = threading.Event(), threading.Event()

    def work(job: Job, x: int, factor: int = 1) -> int:
        job.add_message("läuft")
        job.set_progress(3, 10)
        entered.set()
        assert release.wait(WAIT)
        return x * factor

    job_id = queue.enqueue(work, args=(21,), kwargs={"factor": 2})
    job = queue.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.started_at is None

    queue.start()
    assert entered.wait(WAIT)
    assert job.to_dict()["status"] == "queued"  # a snapshot stays as it was read
    snapshot = job.refresh().to_dict()
    assert snapshot["status"] == "running"
    assert snapshot["progress"] == 3 and snapshot["total_steps"] == 10
    assert snapshot["progress_percent"] == 30
    assert snapshot["started_at"] is not None and snapshot["completed_at"] is None

    release.set()
    assert enqueue_signal(queue).wait(WAIT)
    snapshot = job.refresh().to_dict()
    assert snapshot["status"] == "completed"
    assert snapshot["result"] == 42
    assert snapshot["progress_percent"] == 100
    assert snapshot["error"] is None
    assert [m["message"] for m in snapshot["messages"]] == ["läuft"]
    created = datetime.fromisoformat(snapshot["created_at"])
    started = datetime.fromisoformat(snapshot["started_at"])
    completed = datetime.fromisoformat(snapshot["completed_at"])
    assert created <= started <= completed


def test_failed_job_records_error_and_keeps_its_progress(queue: JobQueue) -> None:
    def work(job: Job) -> None:
        job.set_progress(40, 100)
        raise RuntimeError("Quelle kaputt")

    job_id = queue.enqueue(work)
    assert queue.run_pending() == 1
    snapshot = queue.get_job(job_id).to_dict()
    assert snapshot["status"] == "failed"
    assert snapshot["error"] == "RuntimeError: Quelle kaputt"
    assert snapshot["progress_percent"] == 40  # a failure never reports 100 %
    assert snapshot["messages"][-1]["message"] == "Fehler: RuntimeError: Quelle kaputt"
    assert snapshot["completed_at"] is not None
    assert "Quelle kaputt" in queue.get_job(job_id).traceback


def test_job_runs_inside_the_app_context_of_its_app(queue: JobQueue, flask_app: Flask) -> None:
    job_id = queue.enqueue(lambda job: current_app.name)
    queue.start()
    assert enqueue_signal(queue).wait(WAIT)
    assert queue.get_job(job_id).result == flask_app.name


def test_fifo_order_with_one_worker(queue: JobQueue) -> None:
    order: list[int] = []
    for index in range(50):
        queue.enqueue(lambda job, i: order.append(i), args=(index,))
    done = enqueue_signal(queue)
    queue.start()
    assert done.wait(WAIT)
    assert order == list(range(50))


def test_hundred_jobs_a_third_failing_all_end_right(queue: JobQueue) -> None:
    def work(job: Job, index: int) -> int:
        if index % 3 == 0:
            raise ValueError(f"boom {index}")
        return index

    queue.start()
    ids = [queue.enqueue(work, args=(index,)) for index in range(100)]
    assert enqueue_signal(queue).wait(WAIT)
    for index, job_id in enumerate(ids):
        job = queue.get_job(job_id)
        if index % 3 == 0:
            assert job.status is JobStatus.FAILED
            assert job.error == f"ValueError: boom {index}"
            assert job.result is None
        else:
            assert job.status is JobStatus.COMPLETED
            assert job.result == index and job.error is None
    assert queue.is_running()
    # and it still takes work after all those failures
    assert enqueue_signal(queue).wait(WAIT)


def test_clear_old_jobs_removes_only_old_finished_jobs(queue: JobQueue, flask_app: Flask) -> None:
    long_ago = utcnow() - timedelta(hours=48)
    old_ok = queue.enqueue(lambda job: None)
    old_failed = queue.enqueue(lambda job: 1 / 0)
    recent = queue.enqueue(lambda job: None)
    assert queue.run_pending() == 3
    for job_id in (old_ok, old_failed):
        backdate(flask_app, job_id, created_at=long_ago, started_at=long_ago, completed_at=long_ago)

    entered, release = threading.Event(), threading.Event()

    def blocking(job: Job) -> None:
        entered.set()
        assert release.wait(WAIT)

    running = queue.enqueue(blocking)
    queued = queue.enqueue(lambda job: None)
    queue.start()
    assert entered.wait(WAIT)
    for job_id in (running, queued):
        backdate(flask_app, job_id, created_at=long_ago)
    backdate(flask_app, running, started_at=long_ago)

    assert queue.clear_old_jobs(max_age_hours=24) == 2
    remaining = {job.id for job in queue.get_all_jobs()}
    assert remaining == {recent, running, queued}
    # even a zero cut-off never touches queued or running jobs
    assert queue.clear_old_jobs(max_age_hours=0) == 1
    assert {job.id for job in queue.get_all_jobs()} == {running, queued}
    release.set()


def test_eight_threads_enqueueing_a_thousand_jobs_lose_none(queue: JobQueue) -> None:
    counter_lock = threading.Lock()
    ran: list[str] = []
    all_ran = threading.Event()

    def work(job: Job) -> None:
        with counter_lock:
            ran.append(job.id)
            if len(ran) == 1000:
                all_ran.set()

    queue.start()
    barrier = threading.Barrier(8)
    ids_per_thread: list[list[str]] = [[] for _ in range(8)]

    def producer(slot: int, app: Flask) -> None:
        with app.app_context():
            barrier.wait()
            for _ in range(125):
                ids_per_thread[slot].append(queue.enqueue(work))

    app = current_app._get_current_object()
    threads = [threading.Thread(target=producer, args=(slot, app)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert all_ran.wait(WAIT)

    ids = [job_id for chunk in ids_per_thread for job_id in chunk]
    assert len(ids) == len(set(ids)) == 1000
    assert sorted(ran) == sorted(ids)
    assert len(queue.get_all_jobs()) == 1000
    assert all(queue.get_job(job_id).status is JobStatus.COMPLETED for job_id in ids)


def test_stop_is_warm_and_queued_jobs_wait_for_restart(queue: JobQueue) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(job: Job) -> str:
        entered.set()
        assert release.wait(WAIT)
        return "fertig"

    slow_id = queue.enqueue(slow)
    later_id = queue.enqueue(lambda job: "später")
    queue.start()
    assert entered.wait(WAIT)

    # The running job outlasts a short timeout: stop says so and does not kill it.
    assert queue.stop(timeout=0.05) is False
    assert queue.get_job(slow_id).status is JobStatus.RUNNING

    release.set()
    assert queue.stop(timeout=WAIT) is True
    assert not queue.is_running()
    assert queue.get_job(slow_id).status is JobStatus.COMPLETED
    assert queue.get_job(slow_id).result == "fertig"
    assert queue.get_job(later_id).status is JobStatus.QUEUED

    queue.start()
    assert enqueue_signal(queue).wait(WAIT)
    assert queue.get_job(later_id).result == "später"


def test_enqueue_autostarts_the_worker_when_configured(flask_app: Flask) -> None:
    flask_app.config["JOBS_AUTOSTART"] = True
    queue = JobQueue(flask_app)
    with flask_app.app_context():
        assert not queue.is_running()
        assert enqueue_signal(queue).wait(WAIT)
        assert queue.is_running()
        assert queue.stop(timeout=WAIT)


def test_set_progress_clamps_and_rejects_non_positive_totals() -> None:
    job = Job(lambda job: None)
    job.set_progress(150, 100)
    assert (job.progress, job.get_progress_percent()) == (100, 100)
    job.set_progress(-5, 20)
    assert (job.progress, job.total_steps, job.get_progress_percent()) == (0, 20, 0)
    job.set_progress(1, 3)
    assert job.get_progress_percent() == 33
    for total in (0, -1):
        with pytest.raises(ValueError):
            job.set_progress(1, total)
    assert job.total_steps == 3  # a rejected call changes nothing


def test_to_dict_has_exactly_the_seed_shape() -> None:
    job = Job(lambda job: None)
    job.add_message("Fetche Daten...")
    snapshot = job.to_dict()
    seed_keys = {
        "id", "status", "progress", "progress_percent", "total_steps", "messages",
        "error", "result", "created_at", "started_at", "completed_at",
    }
    assert seed_keys <= set(snapshot)
    # Later issues add keys (attempts and retries, which job kind), never change the seed's.
    assert set(snapshot) - seed_keys <= EXTENSION_KEYS
    assert snapshot["status"] == "queued"
    assert snapshot["messages"][0]["message"] == "Fetche Daten..."
    datetime.fromisoformat(snapshot["messages"][0]["timestamp"])
    datetime.fromisoformat(snapshot["created_at"])
    # the snapshot is a copy: later writes do not change it
    job.add_message("Registriere Daten...")
    assert len(snapshot["messages"]) == 1


def test_init_app_refuses_double_registration(flask_app: Flask) -> None:
    queue = JobQueue()
    queue.init_app(flask_app)
    with pytest.raises(RuntimeError):
        queue.init_app(flask_app)
    assert flask_app.extensions["job_queue"] is not None


def test_seed_debugging_snippet_works_outside_an_app_context(flask_app: Flask) -> None:
    queue = JobQueue(flask_app)
    with flask_app.app_context():
        job_id = queue.enqueue(lambda job: job.set_progress(50, 100))
        queue.run_pending()
    # As in the seed: from job_queue import job_queue; job_queue.get_all_jobs()
    lines = [f"{job.id}: {job.status.value} - {job.progress}%" for job in queue.get_all_jobs()]
    assert lines == [f"{job_id}: completed - 100%"]


def test_unbound_queue_says_how_to_bind_it() -> None:
    with pytest.raises(RuntimeError, match="init_app"):
        JobQueue().get_all_jobs()


def test_keyboard_interrupt_in_run_pending_propagates_and_the_job_can_run_again(queue: JobQueue) -> None:
    interrupted: list[str] = []

    def interrupt_once(job: Job) -> str:
        if not interrupted:
            interrupted.append(job.id)
            raise KeyboardInterrupt
        return "zweiter Lauf"

    job_id = queue.enqueue(interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        queue.run_pending()
    job = queue.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.error is None
    assert job.attempts == 0  # an interrupted caller is not the job's fault

    assert queue.run_pending() == 1
    assert queue.get_job(job_id).result == "zweiter Lauf"


def test_system_exit_in_a_job_fails_the_job_not_the_worker(queue: JobQueue) -> None:
    import sys

    failing = queue.enqueue(lambda job: sys.exit(3))
    done = enqueue_signal(queue)
    queue.start()
    assert done.wait(WAIT)
    assert queue.get_job(failing).status is JobStatus.FAILED
    assert queue.get_job(failing).error == "SystemExit: 3"
    assert queue.is_running()


@pytest.mark.parametrize("not_a_job", [42, None, "nur_ein_name", "json:nicht_da", b"os:getcwd"])
def test_enqueue_refuses_what_cannot_run_at_once(queue: JobQueue, not_a_job: object) -> None:
    with pytest.raises(TypeError):
        queue.enqueue(not_a_job)  # type: ignore[arg-type]
    assert queue.get_all_jobs() == []


def test_enqueue_takes_a_module_function_string(queue: JobQueue) -> None:
    job_id = queue.enqueue("job_helpers:slow_job", args=(0.0,), kwargs={"steps": 2})
    assert queue.get_job(job_id).func_path == "job_helpers:slow_job"
    assert queue.run_pending() == 1
    job = queue.get_job(job_id)
    assert job.status is JobStatus.COMPLETED and isinstance(job.result, int)


def test_job_finished_is_sent_once_per_outcome_with_the_final_state(queue: JobQueue, flask_app: Flask) -> None:
    from job_queue import job_finished

    seen: list[tuple[str, str, object]] = []

    def receiver(sender: Flask, job) -> None:
        seen.append((job.id, job.status.value, job.result if job.error is None else job.error))

    with job_finished.connected_to(receiver, sender=flask_app):
        ok = queue.enqueue(lambda job: "gut")
        bad = queue.enqueue(lambda job: 1 / 0)
        assert queue.run_pending() == 2
    assert seen == [(ok, "completed", "gut"), (bad, "failed", "ZeroDivisionError: division by zero")]
