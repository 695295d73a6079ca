"""Benchmark: the Miles & More scraper against a slow loopback portal.

A loopback server imitates the portal: robots.txt, a sitemap of N partner
pages (536 by default, as many as the real portal has), and each partner page
answered after 50 ms. The server counts the requests in flight at once. The
scraper runs three ways, printed side by side:

* concurrency 1, no interval: one page after the other;
* the default politeness settings (``SCRAPER_HOST_CONCURRENCY``,
  ``SCRAPER_MIN_INTERVAL`` from app.py): the wall time should be within 10 %
  of what the interval alone allows, i.e. the scraper adds no overhead;
* limits lifted (concurrency 16, no interval; only ever against loopback).

Only figures are printed; nothing asserts on wall time.

    python bench/scrape_speed.py [--pages 536] [--latency 0.05] [--skip-default]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from app import DEFAULTS, create_app  # noqa: E402
from job_queue import job_queue  # noqa: E402
from models import db  # noqa: E402
from scrapers.miles_and_more import scrape_miles_and_more  # noqa: E402

PAGE = """<!doctype html><html lang="de"><head><meta charset="utf-8"><title>{name}</title></head>
<body><h1>{name}</h1><script type="application/json" id="__STATIC_ROUTER_DATA__">{data}</script></body></html>"""


class PortalStats:
    """Requests seen by the fake portal, and the most in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def partner_page(index: int) -> bytes:
    bonded = {
        "unique_name": f"partner_{index}",
        "name": f"Partner {index}",
        "partner_id": index,
        "loyalty_points": 1 + index % 4,
        "status": "online",
        "visible": True,
        "hidden_shop": False,
    }
    data = {"loaderData": {"0": {"view": {"page": {"bonded_data": bonded}}}}}
    return PAGE.format(name=f"Partner {index}", data=json.dumps(data)).encode()


@contextmanager
def fake_portal(pages: int, latency: float) -> Iterator[tuple[str, PortalStats]]:
    stats = PortalStats()
    bodies = {f"/partner/partner_{i}": partner_page(i) for i in range(pages)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body as separate writes must not stall

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:
            stats.enter()
            try:
                path = self.path.split("?", 1)[0]
                base = f"http://127.0.0.1:{self.server.server_port}"
                if path == "/robots.txt":
                    body = f"User-agent: *\nDisallow: /api\nSitemap: {base}/sitemap.xml\n".encode()
                elif path == "/sitemap.xml":
                    urls = "".join(f"<url><loc>{base}{p}</loc></url>" for p in bodies)
                    body = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                            f'sitemap/0.9">{urls}</urlset>').encode()
                elif path in bodies:
                    time.sleep(latency)  # the portal's own response time
                    body = bodies[path]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                stats.leave()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", stats
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Outcome:
    label: str
    concurrency: int
    interval: float
    seconds: float
    requests: int
    max_in_flight: int
    added: int


def run(label: str, pages: int, latency: float, concurrency: int, interval: float) -> Outcome:
    with tempfile.TemporaryDirectory() as folder, fake_portal(pages, latency) as (base, stats):
        app = create_app({
            "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite",
            "SECRET_KEY": "bench",
            "JOBS_AUTOSTART": False,
            "SCRAPER_SOURCES": "online",
            "MILES_AND_MORE_SITEMAP_URL": f"{base}/sitemap.xml",
            "SCRAPER_ALLOWED_HOSTS": base.removeprefix("http://"),  # the fake portal is on loopback
            "SCRAPER_HOST_CONCURRENCY": concurrency,
            "SCRAPER_MIN_INTERVAL": interval,
        })
        with app.app_context():
            job_id = job_queue.enqueue(scrape_miles_and_more)
            started = time.perf_counter()
            job_queue.run_pending()
            seconds = time.perf_counter() - started
            job = job_queue.get_job(job_id)
            if job.error:
                raise RuntimeError(job.error)
            db.engine.dispose()
        return Outcome(label, concurrency, interval, seconds, stats.requests, stats.max_in_flight,
                       job.result["added"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=536)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per partner page")
    parser.add_argument("--skip-default", action="store_true", help="skip the slow polite run")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)

    default_concurrency = DEFAULTS["SCRAPER_HOST_CONCURRENCY"]
    default_interval = DEFAULTS["SCRAPER_MIN_INTERVAL"]
    plans = [("concurrency 1", 1, 0.0)]
    if not args.skip_default:
        plans.append(("defaults (polite)", default_concurrency, default_interval))
    plans.append(("limits lifted", 16, 0.0))

    outcomes = [run(label, args.pages, args.latency, c, i) for label, c, i in plans]
    print(f"Miles & More scraper, {args.pages} partner pages on loopback, {args.latency * 1000:.0f} ms each\n")
    print(f"{'run':<20}{'conc.':>6}{'interval':>10}{'requests':>10}{'wall s':>9}"
          f"{'bound s':>9}{'overhead':>10}{'max in flight':>15}{'shops':>7}")
    for o in outcomes:
        # The fastest any scraper could be under these limits: request starts
        # spaced by the interval, or pages/concurrency waves of the latency.
        bound = max((o.requests - 1) * o.interval + args.latency,
                    args.pages / o.concurrency * args.latency)
        overhead = (o.seconds / bound - 1) * 100
        print(f"{o.label:<20}{o.concurrency:>6}{o.interval:>10.2f}{o.requests:>10}{o.seconds:>9.2f}"
              f"{bound:>9.2f}{overhead:>9.1f}%{o.max_in_flight:>9} of {o.concurrency:<3}{o.added:>7}")
    print("\nTargets: defaults within 10 % of the bound; limits lifted under 5 s; "
          "max in flight never above the configured concurrency.")


if __name__ == "__main__":
    main()
