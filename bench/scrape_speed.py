"""Benchmark: the Miles & More scraper against a slow loopback portal.

A loopback server (``loopback_sources.py``) imitates the portal: robots.txt, a sitemap of N partner
pages (536 by default, as many as the real portal has, in the live page shape; ``--page-bytes``
pads them to a live page's size, default 0: pacing, not parsing, is measured here), and each partner page
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
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
for folder in (str(REPO_ROOT), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from app import DEFAULTS, create_app  # noqa: E402
from job_queue import PROCESS, THREAD, job_queue  # noqa: E402
from models import db  # noqa: E402
from scrapers.miles_and_more import scrape_miles_and_more  # noqa: E402

from loopback_sources import PortalStats, live_partner_pages, serve_sources  # noqa: E402


@contextmanager
def fake_portal(pages: int, latency: float, page_bytes: int = 0) -> Iterator[tuple[str, PortalStats]]:
    """Serve ``pages`` live-shaped partner pages, each answered after ``latency`` seconds."""
    with serve_sources(live_partner_pages(pages, page_bytes), [], latency) as source:
        yield source.base, source.stats


@dataclass
class Outcome:
    label: str
    concurrency: int
    interval: float
    seconds: float
    requests: int
    max_in_flight: int
    added: int


def run(label: str, pages: int, latency: float, concurrency: int, interval: float,
        page_bytes: int = 0, in_child: bool = False, **config: Any) -> Outcome:
    """Scrape the loopback portal once: in this thread, or (``in_child``) in a child as the app runs it.

    ``config`` adds app settings. ``page_bytes`` pads each page to a live
    page's size (parsing then costs what it costs live); 0 keeps the
    samples' 1.6 KB, so the fetch pacing alone decides the wall time. The
    wall time is the job's own, from its claim to its end.
    """
    with tempfile.TemporaryDirectory() as folder, fake_portal(pages, latency, page_bytes) as (base, stats):
        app = create_app({
            "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
            "JOBS_AUTOSTART": False,
            # No delivery threads: they would outlive this run's scratch database in a suite.
            "WEBHOOK_DELIVERY_AUTOSTART": False,
            "SCRAPER_SOURCES": "online",
            "MILES_AND_MORE_SITEMAP_URL": f"{base}/sitemap.xml",
            "SCRAPER_ALLOWED_HOSTS": base.removeprefix("http://"),  # the fake portal is on loopback
            "SCRAPER_HOST_CONCURRENCY": concurrency,
            "SCRAPER_MIN_INTERVAL": interval,
            **config,
        }, instance_path=folder)  # the first-start admin password goes to the scratch folder, not instance/
        with app.app_context():
            if in_child:
                job_queue.warm_up().result(timeout=120)  # the fork server's first start is not the scrape's
            job_id = job_queue.enqueue(scrape_miles_and_more, isolation=PROCESS if in_child else THREAD)
            if in_child:
                job_queue.start(threads=1)
                while not (job := job_queue.get_job(job_id)).status.is_final:
                    time.sleep(0.05)  # another process's progress: only the database says
                job_queue.stop()
            else:
                job_queue.run_pending()
                job = job_queue.get_job(job_id)
            if job.error:
                raise RuntimeError(job.error)
            seconds = (job.completed_at - job.started_at).total_seconds()
            db.engine.dispose()
        return Outcome(label, concurrency, interval, seconds, stats.requests, stats.max_in_flight,
                       job.result["added"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=536)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per partner page")
    parser.add_argument("--skip-default", action="store_true", help="skip the slow polite run")
    parser.add_argument("--page-bytes", type=int, default=0, help="pad partner pages to this size")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)

    default_concurrency = DEFAULTS["SCRAPER_HOST_CONCURRENCY"]
    default_interval = DEFAULTS["SCRAPER_MIN_INTERVAL"]
    plans = [("concurrency 1", 1, 0.0)]
    if not args.skip_default:
        plans.append(("defaults (polite)", default_concurrency, default_interval))
    plans.append(("limits lifted", 16, 0.0))

    outcomes = [run(label, args.pages, args.latency, c, i, args.page_bytes) for label, c, i in plans]
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
