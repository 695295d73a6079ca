"""The benchmark suite's pieces work: open-loop latency, loopback sources, the entry point.

No assertion here depends on how fast this machine is: the stall test only
uses what must hold by causality (a single-threaded server cannot answer a
request before it has finished the one it is stalled on).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

import responsiveness  # bench/ is on the path (conftest)
import served_app
from loopback_sources import live_partner_pages, payback_catalogue
from open_loop import HttpClient, Sample, Stream, due_time, run_streams
from scrapers.miles_and_more_pages import parse_partner_page
from scrapers.payback import parse_payback_page

REPO = Path(__file__).resolve().parent.parent
STALL_SECONDS = 1.0


class _StallingHandler(BaseHTTPRequestHandler):
    """HTTP/1.0, one request per connection; ``/stall`` holds the only server thread for a while."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        if self.path == "/stall":
            time.sleep(STALL_SECONDS)  # the fake slow server: every later request queues behind this one
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def stalling_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _StallingHandler)  # single-threaded on purpose
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_stalled_request_shows_as_latency_of_the_requests_due_after_it(stalling_server: int) -> None:
    async def measure() -> list[Sample]:
        client = HttpClient("127.0.0.1", stalling_server, timeout=30)
        stream = Stream("job_status", client, 50.0, lambda i: "/stall" if i == 3 else "/ok")
        await run_streams([stream], lambda: False, max_seconds=0.21)
        client.close()
        return stream.samples

    samples = asyncio.run(measure())
    assert len(samples) == 11 and all(sample.ok for sample in samples)
    stalled, following = samples[3], samples[4:]
    # Open loop: the next requests went out on their schedule, while the stalled one was still unanswered ...
    assert all(sample.sent < stalled.answered for sample in following)
    # ... and each waited behind it: it was answered no sooner than the stall ended, which was at least
    # STALL_SECONDS after the stalled request was due. Its latency counts from its own due time.
    for sample in following:
        assert sample.answered >= stalled.due + STALL_SECONDS
        assert sample.latency >= STALL_SECONDS - (sample.due - stalled.due)


class _EtagHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; 304 without a body when the client already has the ETag."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        body = b'{"status": "running"}'
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_polling_sends_the_last_etag_and_reads_304_answers_without_a_body() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EtagHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    async def poll() -> list[Sample]:
        client = HttpClient("127.0.0.1", server.server_port, timeout=10)
        stream = Stream("job_status", client, 100.0, lambda i: "/admin/job_status/1", conditional=True)
        await run_streams([stream], lambda: False, max_seconds=0.2)
        client.close()
        return stream.samples

    try:
        samples = asyncio.run(poll())
    finally:
        server.shutdown()
        server.server_close()
    assert samples[0].status == 200 and all(sample.ok for sample in samples)
    assert [sample.status for sample in samples].count(304) >= 1  # the ETag came back, the 304 was read


def test_due_times_follow_a_fixed_schedule_and_failures_count() -> None:
    assert [due_time(10.0, 4.0, i) for i in range(3)] == [10.0, 10.25, 10.5]
    samples = [Sample("job_status", due=float(i), sent=float(i), answered=i + 0.010 * (i + 1), status=200)
               for i in range(100)]
    samples.append(Sample("job_status", due=100.0, sent=100.0, answered=100.5, error="TimeoutError"))
    summary = responsiveness.Latencies.of(samples)
    assert summary.count == 101 and summary.errors == 1
    assert summary.p50 == pytest.approx(500.0) and summary.max == pytest.approx(1000.0)


def test_the_loopback_sources_serve_distinct_partners_in_the_live_shape() -> None:
    pages = live_partner_pages(35)  # more than the 30 samples: clones must differ
    offers = [parse_partner_page(body, f"http://127.0.0.1{path}") for path, body in pages.items()]
    names = {offer.external_id for offer in offers if offer is not None}
    assert len(pages) == 35 and len(names) == len([offer for offer in offers if offer is not None]) > 30
    page = parse_payback_page({"totalResultSize": 50, "digitalShopListItem": payback_catalogue(50)})
    assert len({offer.external_id for offer in page.offers}) == 50


def test_the_responsiveness_flags_pick_rows_and_quick_leaves_explicit_flags_alone() -> None:
    args = responsiveness.parse_args(["--quick", "--servers", "gunicorn:2x4"])
    assert (args.servers, args.shapes, args.idle_seconds) == ("gunicorn:2x4", "process,thread", 5.0)
    command = served_app.server_command("gunicorn:2x4", 8123)
    assert command[command.index("-k") + 1] == "gthread" and command[command.index("-w") + 1] == "2"
    assert command[command.index("--threads") + 1] == "4"
    plans = list(served_app.plans(["flask"], ["process", "worker"], ["lifted"]))
    assert [plan.shape for plan in plans] == ["process", "worker"]


def test_python_m_bench_help_runs() -> None:
    finished = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert "--quick" in finished.stdout and "--postgres" in finished.stdout
