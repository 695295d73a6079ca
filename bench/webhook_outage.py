"""Benchmark: webhooks of jobs that finish across a database outage and a worker's kill -9, and stalled endpoints.

What is measured
    1. Outage and restart: 100 jobs of 0.3 s (``--jobs``, ``--seconds``) on a
       ``flask worker`` of 3 threads that reaches PostgreSQL through a TCP
       proxy. Once a fifth of the jobs are done the proxy is cut for 10 s
       (``--outage``): open connections drop and pooled ones are dead when it
       comes back, as after a database restart. A second after the link is
       back the worker is killed (``kill -9``) and a new one started. The
       receiver answers 503 to the first attempt of every fifth message, so
       retries run through all of it. Printed: jobs completed, executions
       (the kill re-runs what it cut short), deliveries recorded and
       delivered, posts received, jobs with no or with two successful posts,
       attempts and failed attempts, job events left, and the time from each
       job's completion to its successful post (p50, p95, max).
    2. Stalled endpoints: in this process, three endpoints that send
       ``HTTP/1.1 200 OK`` and then nothing, and a healthy one, all
       subscribed; 20 jobs; default delivery settings, a 30 s total budget.
       Printed: how late each job's post reached the healthy endpoint (p50,
       max), and how many attempts the stalled ones held.

Run from the repository root (empties the database first)::

    python bench/webhook_outage.py [--postgresql URL] [--jobs 100] [--outage 10]

``--postgresql`` defaults to ``TEST_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
BENCH, TESTS = REPO / "bench", REPO / "tests"
for folder in (REPO, BENCH, TESTS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from job_queue import job_queue  # noqa: E402
from jobs.schema import job_event_table, job_table  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from queue_throughput import fresh_database  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
from webhook_helpers import StallingReceiver  # noqa: E402
from webhooks import dispatcher  # noqa: E402
from webhooks.endpoints import EndpointForm, create_endpoint  # noqa: E402
from webhooks.models import WebhookAttempt, WebhookDelivery  # noqa: E402

SECRET_KEY = "bench-only-secret-key-0123456789abcdef"
FAST_RETRIES = {"WEBHOOK_RETRY_FIRST_DELAY": "1", "WEBHOOK_RETRY_MAX_DELAY": "10", "WEBHOOK_TOTAL_TIMEOUT": "5",
                "WEBHOOK_READ_TIMEOUT": "5", "WEBHOOK_POLL_INTERVAL": "10"}


class Receiver:
    """A loopback webhook receiver: 503 to the first attempt of every ``fail_every``-th message, else 200."""

    def __init__(self, fail_every: int = 0) -> None:
        self.lock = threading.Lock()
        self.posts: list[tuple[str, str, int, float]] = []  # (message id, job id, status sent, time.time())
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message_id = self.headers.get("webhook-id", "")
                with receiver.lock:
                    seen = sum(1 for post in receiver.posts if post[0] == message_id)
                    flaky = fail_every and zlib.crc32(message_id.encode()) % fail_every == 0
                    status = 503 if seen == 0 and flaky else 200
                    receiver.posts.append((message_id, json.loads(body)["data"]["id"], status, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _console(url: str, instance: str, **config: Any):
    """An app that only watches (no job threads, no delivery threads unless started)."""
    return create_app({"TESTING": True, "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url, "JOBS_AUTOSTART": False,
                       "JOBS_RUN_IN_WEB": False, "WEBHOOK_DELIVERY_AUTOSTART": False, **config},
                      instance_path=instance)


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no values"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s"


def outage_and_restart(url: str, jobs: int, seconds: float, outage: float) -> bool:
    """Part 1; returns whether every job's webhook was delivered exactly once."""
    fresh_database(url)
    receiver = Receiver(fail_every=5)
    group = ProcessGroup()
    port = urlsplit(url).port or 5432
    with tempfile.TemporaryDirectory() as scratch, TcpProxy(port) as proxy:
        app = _console(url, scratch)
        engine = sa.create_engine(url)
        runs_log = Path(scratch) / "runs.log"
        with app.app_context():
            create_endpoint(dispatcher.state(app), EndpointForm(url=receiver.url, events=["completed", "failed"]))
            ids = [job_queue.enqueue("jobs_for_bench:counted", args=(str(runs_log), seconds)) for _ in range(jobs)]
        via_proxy = url.replace(f":{port}/", f":{proxy.port}/")
        env = dict(os.environ, DATABASE_URL=via_proxy, SECRET_KEY=SECRET_KEY, INSTANCE_PATH=scratch,
                   WEBHOOK_ALLOWED_HOSTS=f"127.0.0.1:{receiver.httpd.server_port}", JOBS_POLL_INTERVAL="0.2",
                   PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]), **FAST_RETRIES)
        command = [sys.executable, "-m", "flask", "--app", "app", "worker", "--threads", "3"]

        def completed() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(job_table)
                                    .where(job_table.c.status == "completed")).scalar()

        started = time.monotonic()
        first = group.start(command, cwd=REPO, env=env)
        _wait(lambda: completed() >= jobs // 5, 120)
        proxy.cut()
        cut_at = time.monotonic() - started
        done_at_cut = completed()
        time.sleep(outage)
        proxy.restore()
        time.sleep(1.0)
        group.expect_exit(first)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at, done_at_kill = time.monotonic() - started, completed()
        group.start(command, cwd=REPO, env=env)

        def all_delivered() -> bool:
            with engine.connect() as conn:
                delivered = conn.execute(sa.select(sa.func.count()).select_from(WebhookDelivery.__table__)
                                         .where(WebhookDelivery.__table__.c.status == "delivered")).scalar()
            return completed() == jobs and delivered >= jobs

        finished = _wait(all_delivered, 300)
        total = time.monotonic() - started
        group.assert_alive()
        group.stop()
        with engine.connect() as conn:
            deliveries = conn.execute(sa.select(WebhookDelivery.__table__.c.status, sa.func.count())
                                      .group_by(WebhookDelivery.__table__.c.status)).all()
            attempts = conn.execute(sa.select(WebhookAttempt.__table__.c.status_code, WebhookAttempt.__table__.c.error)
                                    ).all()
            events_left = conn.execute(sa.select(sa.func.count()).select_from(job_event_table)).scalar()
            completed_at = dict(conn.execute(sa.select(job_table.c.id, job_table.c.completed_at)).all())
        engine.dispose()
        with app.app_context():
            from models import db

            db.session.remove()
            db.engine.dispose()
            app.extensions["job_queue"].store.engine.dispose()
        runs = Counter(line.split()[1] for line in runs_log.read_text().splitlines() if line.startswith("start "))
    receiver.close()
    delivered_posts = [post for post in receiver.posts if post[2] == 200]
    per_job = Counter(job_id for _, job_id, _, _ in delivered_posts)
    first_success = {}
    for _, job_id, _, at in delivered_posts:
        first_success.setdefault(job_id, at)
    late = [first_success[job_id] - completed_at[job_id].replace(tzinfo=timezone.utc).timestamp()
            for job_id in ids if job_id in first_success and completed_at.get(job_id)]
    failed_attempts = Counter(("HTTP %s" % code) if code else (error or "")[:40]
                              for code, error in attempts if code != 200)
    print(f"1. {jobs} jobs of {seconds:g} s, flask worker --threads 3 through a TCP proxy to PostgreSQL")
    print(f"   link cut at {cut_at:.1f} s ({done_at_cut} jobs done) for {outage:g} s; worker killed (-9) "
          f"at {killed_at:.1f} s ({done_at_kill} done) and a new one started; all delivered after {total:.1f} s: "
          f"{finished}")
    print(f"   jobs completed {sum(1 for job_id in ids if completed_at.get(job_id))}/{jobs}; executions "
          f"{sum(runs.values())} (re-runs of jobs the kill cut short: {sum(n - 1 for n in runs.values())})")
    print(f"   deliveries {dict(deliveries)}; job events left {events_left}")
    print(f"   posts received {len(receiver.posts)} ({len(delivered_posts)} answered 200); jobs without a delivered "
          f"post {sum(1 for job_id in ids if per_job[job_id] == 0)}; with more than one "
          f"{sum(1 for job_id in ids if per_job[job_id] > 1)}")
    print(f"   attempts recorded {len(attempts)}, failed {sum(failed_attempts.values())}: {dict(failed_attempts)}")
    print(f"   job completed -> its webhook delivered: {_percentiles(late)}")
    return finished and all(per_job[job_id] == 1 for job_id in ids) and events_left == 0


def stalled_endpoints(url: str, jobs: int = 20) -> float:
    """Part 2; returns the latest healthy delivery's delay in seconds."""
    fresh_database(url)
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as scratch, StallingReceiver() as a, StallingReceiver() as b, \
            StallingReceiver() as c:
        hosts = ",".join([f"127.0.0.1:{receiver.httpd.server_port}", a.allowed_host, b.allowed_host, c.allowed_host])
        app = _console(url, scratch, WEBHOOK_ALLOWED_HOSTS=hosts, WEBHOOK_DELIVERY_AUTOSTART=True,
                       JOBS_RUN_IN_WEB=True)
        with app.app_context():
            for stalled in (a, b, c):
                create_endpoint(dispatcher.state(app), EndpointForm(url=stalled.url, events=["completed"]))
            healthy_url = receiver.url.replace("/hook", "/healthy")
            create_endpoint(dispatcher.state(app), EndpointForm(url=healthy_url, events=["completed"]))
            ids = [job_queue.enqueue(lambda job: time.sleep(0.05)) for _ in range(jobs)]
            job_queue.start()
            _wait(lambda: len({post[1] for post in receiver.posts}) >= jobs, 60)
            completed = {job_id: job_queue.get_job(job_id).completed_at.timestamp() for job_id in ids}
            job_queue.stop(timeout=10)
        held = [len(stalled.arrivals) for stalled in (a, b, c)]
    dispatcher.stop(app, timeout=10)
    receiver.close()
    arrived = {job_id: at for _, job_id, _, at in receiver.posts}
    late = [arrived[job_id] - completed[job_id] for job_id in ids if job_id in arrived]
    print(f"2. three endpoints that send 'HTTP/1.1 200 OK' and stall, one healthy; {jobs} jobs; default threads "
          f"({app.config['WEBHOOK_DELIVERY_THREADS']}) and per-endpoint limit "
          f"({app.config['WEBHOOK_ENDPOINT_CONCURRENCY']}), total budget {app.config['WEBHOOK_TOTAL_TIMEOUT']:g} s")
    print(f"   healthy deliveries {len(late)}/{jobs}; job completed -> healthy post: {_percentiles(late)}; "
          f"attempts held by each stalled endpoint: {held}")
    return max(late) if len(late) == jobs else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--outage", type=float, default=10.0)
    args = parser.parse_args()
    if not args.postgresql:
        sys.exit("needs PostgreSQL: --postgresql URL or TEST_DATABASE_URL (the database is emptied)")
    url = args.postgresql.replace("postgresql://", "postgresql+psycopg://", 1)
    ok = outage_and_restart(url, args.jobs, args.seconds, args.outage)
    worst = stalled_endpoints(url)
    print(f"every job delivered exactly once: {ok}; healthy endpoint at most {worst:.2f} s late beside stalled ones")
    sys.exit(0 if ok and worst < 1.0 else 1)


if __name__ == "__main__":
    main()
