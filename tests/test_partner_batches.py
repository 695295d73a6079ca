"""Miles & More pages fetched in the parse pool, batch after batch: politeness holds across batches."""

from __future__ import annotations

import pytest

from job_queue import job_queue
from scrapers.miles_and_more import scrape_miles_and_more
from scrapers.partner_batches import pages_per_batch
from scrapers.fetch_settings import FetchSettings
from scripted_server import Reply, ScriptedServer
from test_bounded_input import partner_page, portal_app, sitemap

CRAWL_DELAY = 0.3
SLACK = 0.05  # arrival times at the server jitter a little on a busy machine


@pytest.mark.timeout(120)
def test_robots_txt_once_and_the_crawl_delay_kept_across_batches(make_app, server: ScriptedServer) -> None:
    names = [f"p{i}" for i in range(28)]
    server.route("/robots.txt", Reply(body=f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\n".encode()))
    server.route("/sitemap.xml", Reply(body=sitemap(server.url, names)))
    for name in names:
        server.route(f"/partner/{name}", Reply(body=partner_page(name)))
    app = portal_app(make_app, server, SCRAPER_PARSE_PROCESSES=2, SCRAPER_MIN_INTERVAL=0.2,
                     SCRAPER_HOST_CONCURRENCY=2)
    with app.app_context():
        assert pages_per_batch(FetchSettings.from_config(app.config)) == 25  # so the run takes 2 batches
        job_id = job_queue.enqueue(scrape_miles_and_more)
        job_queue.run_pending()
        job = job_queue.get_job(job_id)
    assert job.status.value == "completed", job.error
    assert job.result["added"] == 28
    assert server.hits["/robots.txt"] == 1  # read with the sitemap, handed to every batch
    starts = [moment for path, moment in server.starts if path != "/robots.txt"]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert min(gaps) >= CRAWL_DELAY - SLACK, sorted(gaps)[:3]
