"""Benchmark: what webhooks add to every finished job, in the worker's own thread.

What is measured
    Jobs per second of ``run_pending()`` over no-op jobs, in rounds that
    alternate between the ``job_finished`` receiver connected and
    disconnected (so machine load hits both alike), for three cases:
    no endpoint at all (one read per job), and one subscribed endpoint (the
    read plus one insert per job; the delivery threads are not started, so
    only the receiver's own cost is in the figure).

Why
    The receiver runs before the worker takes its next job. It must only
    record deliveries; this shows what that costs per job next to the job
    queue's own work (claim, finish).

Only figures are printed. Run from the repository root::

    python bench/webhook_overhead.py [--jobs 500] [--rounds 6] [--postgresql URL]

``--postgresql`` (default ``TEST_DATABASE_URL``) empties that database first.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from job_queue import job_finished, job_queue  # noqa: E402
from webhooks import dispatcher  # noqa: E402
from webhooks.endpoints import EndpointForm, create_endpoint  # noqa: E402
from webhooks.events import on_job_finished  # noqa: E402


def noop(job) -> None:
    return None


def jobs_per_second(jobs: int) -> float:
    for _ in range(jobs):
        job_queue.enqueue(noop)
    started = time.perf_counter()
    job_queue.run_pending()
    return jobs / (time.perf_counter() - started)


def measure(url: str, jobs: int, rounds: int, subscribed: bool) -> tuple[float, float]:
    """Median jobs/s with and without the receiver."""
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "bench-only-secret-key-0123456789abcdef", "JOBS_AUTOSTART": False,
                      "WEBHOOK_DELIVERY_AUTOSTART": False})
    rates: dict[bool, list[float]] = {True: [], False: []}
    with app.app_context():
        if subscribed:
            create_endpoint(dispatcher.state(), EndpointForm(url="https://example.org/hook", events=["completed"]))
        for round_ in range(rounds):
            for connected in ((True, False) if round_ % 2 else (False, True)):
                if connected:
                    job_finished.connect(on_job_finished)
                else:
                    job_finished.disconnect(on_job_finished)
                rates[connected].append(jobs_per_second(jobs))
        job_finished.connect(on_job_finished)
        app.extensions["job_queue"].store.engine.dispose()
        app.extensions["sqlalchemy"].engine.dispose()
    return statistics.median(rates[True]), statistics.median(rates[False])


def fresh_postgresql(url: str) -> str:
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{'database':<12}{'endpoints':<12}{'with':>9}{'without':>9}  jobs/s (median of {args.rounds} rounds "
          f"of {args.jobs}), cost per job")
    with tempfile.TemporaryDirectory() as folder:
        backends = [("SQLite", lambda case: f"sqlite:///{folder}/{case}.sqlite")]
        if args.postgresql:
            backends.append(("PostgreSQL", lambda case: fresh_postgresql(args.postgresql)))
        for name, url_for in backends:
            for subscribed in (False, True):
                case = "one" if subscribed else "none"
                with_receiver, without = measure(url_for(case), args.jobs, args.rounds, subscribed)
                cost_us = (1 / with_receiver - 1 / without) * 1e6
                print(f"{name:<12}{case:<12}{with_receiver:>9.0f}{without:>9.0f}  +{cost_us:.0f} µs per job")


if __name__ == "__main__":
    main()
