"""Bounded input: huge sitemaps, overlong and hostile field values never sink a run."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from flask import Flask

from job_queue import job_queue
from models import Programme, Shop, db
from scrapers.miles_and_more import scrape_miles_and_more
from scripted_server import Reply, ScriptedServer, server  # noqa: F401 (fixture)

PAGE = ('<html><body><script type="application/json" id="__STATIC_ROUTER_DATA__">{data}</script>'
        "</body></html>")


def run(app: Flask, func) -> tuple[dict, float]:
    with app.app_context():
        job_id = job_queue.enqueue(func)
        started = time.monotonic()
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict(), time.monotonic() - started


def sitemap(base: str, names: list[str]) -> bytes:
    urls = "".join(f"<url><loc>{base}/partner/{name}</loc></url>" for name in names)
    return (f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}'
            "</urlset>").encode()


def partner_page(name: str) -> bytes:
    bonded = {"unique_name": name, "name": f"Partner {name}", "loyalty_points": 1, "status": "online",
              "visible": True, "hidden_shop": False}
    return PAGE.format(data=json.dumps({"loaderData": {"0": {"view": {"page": {"bonded_data": bonded}}}}})).encode()


def portal_app(make_app, scripted: ScriptedServer, **config) -> Flask:
    return make_app(SCRAPER_SOURCES="online", MILES_AND_MORE_SITEMAP_URL=f"{scripted.url}/sitemap.xml",
                    SCRAPER_ALLOWED_HOSTS=f"127.0.0.1:{scripted.httpd.server_port}", **config)


def test_sitemap_of_100000_urls_fails_at_once_with_a_clear_message(make_app, server: ScriptedServer) -> None:
    server.route("/sitemap.xml", Reply(body=sitemap(server.url, [f"p{i}" for i in range(100_000)])))
    snapshot, seconds = run(portal_app(make_app, server), scrape_miles_and_more)
    print(f"100,000-URL sitemap failed after {seconds:.2f} s")  # figure for the note (pytest -s)
    assert snapshot["status"] == "failed"
    assert "mehr als 5000 Partnerseiten" in snapshot["error"] and "MAX_SITEMAP_URLS" in snapshot["error"]
    assert seconds < 2
    assert not [path for path in server.hits if path.startswith("/partner/")]


@pytest.mark.timeout(120)
def test_sitemap_of_5000_urls_is_processed(make_app, server: ScriptedServer) -> None:
    names = [f"p{i}" for i in range(5000)]
    server.route("/sitemap.xml", Reply(body=sitemap(server.url, names + names[:2000])))  # duplicates count once
    for name in names:
        server.route(f"/partner/{name}", Reply(body=partner_page(name)))
    app = portal_app(make_app, server, SCRAPER_HOST_CONCURRENCY=8)
    snapshot, seconds = run(app, scrape_miles_and_more)
    print(f"5,000-URL sitemap processed in {seconds:.1f} s")
    assert snapshot["status"] == "completed", snapshot["error"]
    assert snapshot["result"]["added"] == 5000
    assert sum(hits for path, hits in server.hits.items() if path.startswith("/partner/")) == 5000
