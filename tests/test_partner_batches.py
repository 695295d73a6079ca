"""Miles & More pages fetched in the parse pool, batch after batch: politeness holds across batches."""

from __future__ import annotations

import pytest

from job_queue import job_queue
from scrapers.miles_and_more import scrape_miles_and_more
from scrapers.partner_batches import pages_per_batch
from scrapers.fetch_settings import FetchSettings
from scripted_server import Reply, ScriptedServer
from test_bounded_input import partner_page, portal_app, sitemap

CRAWL_DELAY = 0.8  # well above what a new batch costs, so a batch starting early would show
SLACK = 0.1  # arrival times at the server jitter on a busy machine; the span only at its two ends


@pytest.mark.timeout(120)
def test_robots_txt_once_and_the_crawl_delay_kept_across_batches(make_app, server: ScriptedServer) -> None:
    names = [f"p{i}" for i in range(7)]
    server.route("/robots.txt", Reply(body=f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\n".encode()))
    server.route("/sitemap.xml", Reply(body=sitemap(server.url, names)))
    for name in names:
        server.route(f"/partner/{name}", Reply(body=partner_page(name)))
    app = portal_app(make_app, server, SCRAPER_PARSE_PROCESSES=2, SCRAPER_MIN_INTERVAL=0.2,
                     SCRAPER_HOST_CONCURRENCY=2)
    with app.app_context():
        assert pages_per_batch(FetchSettings.from_config(app.config)) == 5  # so the run takes 2 batches
        job_id = job_queue.enqueue(scrape_miles_and_more)
        job_queue.run_pending()
        job = job_queue.get_job(job_id)
    assert job.status.value == "completed", job.error
    assert job.result["added"] == 7
    assert server.hits["/robots.txt"] == 1  # read with the sitemap, handed to every batch
    # Each request starts a crawl delay after the one before, batch boundaries included: the span
    # from the sitemap to the last partner page is at least that many delays. (Single gaps are no
    # measure here: one arrival delayed by a busy machine makes the next gap look short.)
    starts = [moment for path, moment in server.starts if path != "/robots.txt"]
    assert len(starts) == 8
    assert starts[-1] - starts[0] >= 7 * CRAWL_DELAY - SLACK, starts[-1] - starts[0]
