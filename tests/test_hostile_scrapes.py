"""Hostile scraped data never jams a scraper: the job ends, says why, and the next run starts."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import API_TOKEN
from job_queue import JobStatus, job_queue
from models import RUN_FAILED, Programme, ScrapeRun, Shop, db
from scrapers.payback import scrape_payback
from scripted_server import Reply, ScriptedServer
from test_job_processes import wait_until

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
NUL_CATALOGUE = b'{"totalResultSize":1,"digitalShopListItem":[{"partner":{"partnerShortName":"evil\\u0000id"}}]}'


def test_a_nul_in_a_catalogue_fails_the_scrape_naming_the_value_and_the_next_run_starts(
        make_app, database_url: str, server: ScriptedServer) -> None:
    server.route("/digital-shops", Reply(body=NUL_CATALOGUE, headers={"Content-Type": "application/json"}))
    app = make_app(DATABASE_URL=database_url, SCRAPER_SOURCES="online", SCRAPER_ATTEMPTS=1,
                   PAYBACK_CATALOGUE_URL=f"{server.url}/digital-shops", JOBS_FLUSH_INTERVAL=0.05,
                   SCRAPER_ALLOWED_HOSTS=server.url.removeprefix("http://"))
    client = app.test_client()
    with app.app_context():
        job_queue.start()
    first = client.post("/admin/run_payback", headers=JSON).json["job_id"]
    with app.app_context():
        assert wait_until(lambda: job_queue.get_job(first).status.is_final, 30), job_queue.get_job(first).to_dict()
        job = job_queue.get_job(first)
        run = db.session.scalar(db.select(ScrapeRun).where(ScrapeRun.job_id == first))
    assert job.status is JobStatus.FAILED, job.to_dict()
    assert "partnerDisplayName" in job.error and "\\x00" in job.error  # the odd value, named visibly
    assert "\x00" not in job.error and all("\x00" not in m["message"] for m in job.messages)
    assert run.outcome == RUN_FAILED and "\x00" not in run.message
    again = client.post("/admin/run_payback", headers=JSON)
    assert again.status_code == 202 and again.json["job_id"] != first  # not stuck: a new run starts


# -- odd values in single entries: the shop is kept, the value passed over and reported ------

def _run_scraper(app: Flask, func) -> dict:
    with app.app_context():
        job_id = job_queue.enqueue(func)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def _payback_app(make_app, database_url: str, server: ScriptedServer, body: bytes) -> Flask:
    server.route("/digital-shops", Reply(body=body, headers={"Content-Type": "application/json"}))
    return make_app(DATABASE_URL=database_url, SCRAPER_SOURCES="online", SCRAPER_ATTEMPTS=1,
                    PAYBACK_CATALOGUE_URL=f"{server.url}/digital-shops",
                    SCRAPER_ALLOWED_HOSTS=server.url.removeprefix("http://"))


def _shop(short_name: str, **fields) -> dict:
    return {"partner": {"partnerShortName": short_name, "partnerDisplayName": f"Shop {short_name}"},
            "incentivation": {"incentivationHeadline": "1 °P pro 1 €"}, **fields}


ODD_ITEMS = [
    _shop("lp0", partnerVanityName="gut", categoryShortNameListItem=["mode"],
          browserExtensionInfoListItem=[{"domainNameListItem": ["www.gut.de"]}]),
    _shop("lp1", promotionListItem={"incentivationHeadline": "5-fach °P"}),  # a dict: its keys are str
    _shop("lp2", promotionListItem=7, categoryShortNameListItem="mode", partnerVanityName=42),
    _shop("evil", browserExtensionInfoListItem=1, incentivation=5,
          promotionListItem=[1, {"incentivationHeadline": 3},
                             {"incentivationHeadline": "2-fach °P", "incentivationSubline": ["bis 1.1.2030"]}]),
    _shop("lp4", browserExtensionInfoListItem=[5, {"domainNameListItem": "a.de"},
                                               {"domainNameListItem": [None, "b.de"]}],
          categoryShortNameListItem=[None, "x" * 500, {"a": 1}], promotionListItem="x" * 10_000),
]


def test_odd_values_in_a_payback_entry_keep_the_shop_and_are_reported(
        make_app, database_url: str, server: ScriptedServer) -> None:
    body = json.dumps({"totalResultSize": len(ODD_ITEMS), "digitalShopListItem": ODD_ITEMS}).encode()
    app = _payback_app(make_app, database_url, server, body)
    snapshot = _run_scraper(app, scrape_payback)
    assert snapshot["status"] == "completed", snapshot["error"]
    assert snapshot["result"]["added"] == len(ODD_ITEMS)
    with app.app_context():
        shops = {shop.external_id: shop for shop in db.session.scalars(
            sa.select(Shop).join(Programme).where(Programme.slug == "payback"))}
        evil_rates = [rate.raw_text for rate in shops["evil"].current_rates]
    assert set(shops) == {"lp0", "lp1", "lp2", "evil", "lp4"}
    assert shops["lp0"].domains == ["gut.de"] and shops["lp0"].categories == ["mode"]
    assert shops["lp2"].slug is None and shops["lp2"].categories == []
    assert shops["lp4"].domains == ["b.de"] and shops["lp4"].categories == ["x" * 252 + "…"]
    assert evil_rates == ["2-fach °P"]  # its subline passed over
    messages = [entry["message"] for entry in snapshot["messages"]]
    (report,) = [m for m in messages if "ungewöhnliche Werte übergangen" in m]
    # lp1: promotions (1); lp2: vanity, promotions, categories (3); evil: incentivation, promotion 0,
    # headline of promotion 1, subline of promotion 2, extensions (5); lp4: promotions, extension 0,
    # domains of extension 1, domain 0 of extension 2, categories 0 and 2 (6).
    assert report == (
        "15 ungewöhnliche Werte übergangen: "
        "Eintrag 1 ('lp1'): 'promotionListItem' ist keine Liste ({'incentivationHeadline': '5-fach °P'}); "
        "Eintrag 2 ('lp2'): 'partnerVanityName' ist kein Text (42); "
        "Eintrag 2 ('lp2'): 'promotionListItem' ist keine Liste (7); …"
    )


def test_a_lone_surrogate_in_a_catalogue_is_dropped_not_fatal(
        make_app, database_url: str, server: ScriptedServer) -> None:
    """JSON may escape half a UTF-16 pair (``\\udc00``): no database can store it, so it must go."""
    body = (b'{"totalResultSize":1,"digitalShopListItem":[{"partner":{"partnerShortName":"lp\\ud800x",'
            b'"partnerDisplayName":"Halb\\udc00 Shop"},"categoryShortNameListItem":["\\udfff"]}]}')
    app = _payback_app(make_app, database_url, server, body)
    snapshot = _run_scraper(app, scrape_payback)
    assert snapshot["status"] == "completed", snapshot["error"]
    with app.app_context():
        shop = db.session.scalar(sa.select(Shop))
    assert (shop.external_id, shop.name, shop.categories) == ("lpx", "Halb Shop", [])


@pytest.mark.parametrize("body, named", [
    (b'{"totalResultSize":' + b"9" * 400 + b',"digitalShopListItem":[]}', "totalResultSize"),
    (b"[" * 100_000, "kein gültiges JSON"),  # deeper than the interpreter's recursion limit
])
def test_a_monstrous_payback_answer_fails_with_a_german_message(
        make_app, server: ScriptedServer, tmp_path, body: bytes, named: str) -> None:
    app = _payback_app(make_app, f"sqlite:///{tmp_path / 'monster.sqlite'}", server, body)
    snapshot = _run_scraper(app, scrape_payback)
    assert snapshot["status"] == "failed"
    assert named in snapshot["error"], snapshot["error"]
    assert snapshot["error"].startswith("ScrapeError: "), snapshot["error"]  # not an OverflowError, ...
