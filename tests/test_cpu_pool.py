"""Parsing off the web's interpreter lock: the queue's process pool, its failures and its switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from flask import Flask

from job_queue import JobStatus, job_queue
from models import Rate, Shop, db
from scrapers.miles_and_more import scrape_miles_and_more

REPO = Path(__file__).resolve().parent.parent


def _wait_final(app: Flask, job_id: str, seconds: float = 30) -> tuple[object, float]:
    """Poll until the job is final; return it and how long that took (for the printed figure)."""
    started = time.monotonic()
    with app.app_context():
        while True:
            job = job_queue.get_job(job_id)
            if job.status.is_final or time.monotonic() - started > seconds:
                return job, time.monotonic() - started
            time.sleep(0.02)


def _run(app: Flask, step: str, *args) -> str:
    with app.app_context():
        job_id = job_queue.enqueue("job_helpers:offload_job", (step, *args))
        job_queue.start()
    return job_id


def test_steps_run_in_another_process_and_in_the_job_thread_when_switched_off(make_app) -> None:
    pooled = make_app(SCRAPER_PARSE_PROCESSES=1)
    with pooled.app_context():
        job_id = job_queue.enqueue("job_helpers:offload_job", ("process_id",))
        job_queue.run_pending()
        assert job_queue.get_job(job_id).result not in (None, os.getpid())
    inline = make_app(SCRAPER_PARSE_PROCESSES=0)
    with inline.app_context():
        job_id = job_queue.enqueue("job_helpers:offload_job", ("process_id",))
        job_queue.run_pending()
        assert job_queue.get_job(job_id).result == os.getpid()


def test_a_crashed_pool_process_fails_the_job_with_a_clear_error_and_the_next_job_runs(make_app) -> None:
    app = make_app(SCRAPER_PARSE_PROCESSES=1)
    job_id = _run(app, "die_at_once")
    job, seconds = _wait_final(app, job_id)
    print(f"crash in the pool: job FAILED after {seconds:.2f} s")  # figure for the note (pytest -s)
    assert job.status is JobStatus.FAILED
    assert "Parser-Prozess wurde unerwartet beendet" in job.error
    # The pool starts afresh for the next job.
    job, _ = _wait_final(app, _run(app, "sleep_then_return", 0.01))
    assert job.status is JobStatus.COMPLETED and job.result == 0.01


def test_a_cancel_reaches_a_job_that_waits_for_the_pool(make_app) -> None:
    app = make_app(SCRAPER_PARSE_PROCESSES=1)
    job_id = _run(app, "sleep_then_return", 60)
    with app.app_context():
        deadline = time.monotonic() + 20
        while job_queue.get_job(job_id).status is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the step is in the pool now
        requested = time.monotonic()
        job_queue.cancel(job_id)
    job, _ = _wait_final(app, job_id)
    print(f"cancel while parsing in the pool: ended after {time.monotonic() - requested:.2f} s")
    assert job.status is JobStatus.CANCELLED  # not after the 60 s step


def _stored(app: Flask) -> list[tuple]:
    with app.app_context():
        return sorted(db.session.execute(
            db.select(Shop.external_id, Shop.name, Shop.detail_url, Rate.kind, Rate.raw_text, Rate.value,
                      Rate.detail, Rate.ends_at).join(Rate)
        ).all())


@pytest.mark.parametrize("processes", [0, 2])
def test_the_miles_and_more_samples_store_the_same_offers_parsed_either_way(
    make_app: Callable[..., Flask], processes: int, tmp_path_factory
) -> None:
    results = []
    for setting in (0, processes):
        app = make_app(SCRAPER_SOURCES="offline", SCRAPER_PARSE_PROCESSES=setting,
                       DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db')}/app.sqlite")
        with app.app_context():
            job_id = job_queue.enqueue(scrape_miles_and_more)
            job_queue.run_pending()
            job = job_queue.get_job(job_id)
            assert job.status is JobStatus.COMPLETED, job.error
        results.append(_stored(app))
    assert results[0] and results[0] == results[1]


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are a Linux feature")
def test_worker_threads_yield_the_cores_to_the_web_threads(make_app) -> None:
    app = make_app(JOBS_THREAD_NICENESS=10)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with app.app_context():
        job_id = job_queue.enqueue("job_helpers:thread_niceness")
        job_queue.start()
    job, _ = _wait_final(app, job_id)
    assert job.result == max(10, own)  # the worker thread runs nicer than the web ...
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # ... and the rest of the process keeps its priority


def test_a_warmed_up_pool_runs_the_first_step_in_a_process_started_before_it(make_app) -> None:
    """A serving process starts the pool with its workers: the first scrape does not wait for it."""
    app = make_app(SCRAPER_PARSE_PROCESSES=2)
    with app.app_context():
        started = job_queue.warm_up_pool().result(timeout=60)
        assert len(started) == 2 and os.getpid() not in started
        job_id = job_queue.enqueue("job_helpers:offload_job", ("process_id",))
        job_queue.run_pending()
        assert job_queue.get_job(job_id).result in started
    inline = make_app(SCRAPER_PARSE_PROCESSES=0)
    with inline.app_context():
        assert job_queue.warm_up_pool().result(timeout=5) == set()


OWNER_DIES = """
import os, sys
from jobs.cpu_pool import CpuPool
if __name__ == "__main__":
    pool = CpuPool(2)
    print(" ".join(str(pid) for pid in sorted(pool.warm_up().result(timeout=60))), flush=True)
    os._exit(0)  # as a killed web process: no shutdown of the pool
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc (Linux)")
def test_pool_processes_end_when_the_process_owning_the_pool_dies_without_shutting_it_down(tmp_path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER_DIES)
    output = tmp_path / "pids.txt"  # a file, not a pipe: processes left behind would hold a pipe open
    with output.open("w") as stdout:
        done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                              stdout=stdout, stderr=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0
    pids = [int(pid) for pid in output.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # other processes: nothing to wait on but their state
    assert not any(_alive(pid) for pid in pids), "pool processes outlived their owner"
