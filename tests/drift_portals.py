"""Loopback portals for the drift-guard tests: each source's live format, any number of partners.

``publish(n, offered=m, understood=k)`` makes the scripted server answer the
next run with ``n`` catalogue entries, of which the first ``m`` are offered to
shoppers (Miles & More: the rest ``visible: false``; the others list only
``m``) and the first ``k`` carry a rate text the parser understands.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from scrapers.example import scrape_example
from scrapers.miles_and_more import scrape_miles_and_more
from scrapers.payback import scrape_payback
from scripted_server import Reply, ScriptedServer

UNKNOWN_RATE = "Punkte auf Anfrage"  # no rate form parse_rate knows


class Portal:
    """One source on the scripted server."""

    programme: str
    scraper: Callable[..., Any]
    hides_partners = False  # lists partners it does not offer (seen != offered)

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server

    def config(self) -> dict[str, Any]:
        return {"SCRAPER_SOURCES": "online", "SCRAPER_ALLOWED_HOSTS": f"127.0.0.1:{self.server.httpd.server_port}"}

    def publish(self, shops: int, offered: Optional[int] = None, understood: Optional[int] = None) -> None:
        raise NotImplementedError

    @staticmethod
    def _split(shops: int, offered: Optional[int], understood: Optional[int]) -> tuple[int, int]:
        return (shops if offered is None else offered), (shops if understood is None else understood)

    def __repr__(self) -> str:
        return self.programme


class PaybackPortal(Portal):
    programme, scraper = "payback", staticmethod(scrape_payback)
    PATH = "/onsflows/api/digital-shops"

    def config(self) -> dict[str, Any]:
        return {**super().config(), "PAYBACK_CATALOGUE_URL": self.server.url + self.PATH, "PAYBACK_PAGE_SIZE": 1000}

    def publish(self, shops: int, offered: Optional[int] = None, understood: Optional[int] = None) -> None:
        offered, understood = self._split(shops, offered, understood)
        items = [{
            "partner": {"partnerShortName": f"lp{i}", "partnerDisplayName": f"Shop {i}"},
            "partnerVanityName": f"shop{i}",
            "incentivation": {"incentivationHeadline": "2 °P pro 1 €" if i < understood else UNKNOWN_RATE},
        } for i in range(offered)]
        body = {"totalResultSize": len(items), "digitalShopListItem": items}
        self.server.route(self.PATH, Reply(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))


class MilesAndMorePortal(Portal):
    programme, scraper = "miles_and_more", staticmethod(scrape_miles_and_more)
    hides_partners = True
    PAGE = ('<html><body><script type="application/json" id="__STATIC_ROUTER_DATA__">{data}</script>'
            "</body></html>")

    def config(self) -> dict[str, Any]:
        return {**super().config(), "MILES_AND_MORE_SITEMAP_URL": f"{self.server.url}/sitemap.xml",
                "SCRAPER_HOST_CONCURRENCY": 8}

    def publish(self, shops: int, offered: Optional[int] = None, understood: Optional[int] = None) -> None:
        offered, understood = self._split(shops, offered, understood)
        names = [f"partner_{i}" for i in range(shops)]
        urls = "".join(f"<url><loc>{self.server.url}/partner/{name}</loc></url>" for name in names)
        self.server.route("/sitemap.xml", Reply(body=(
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{urls}</urlset>").encode()))
        for i, name in enumerate(names):
            bonded = {"unique_name": name, "name": f"Partner {i}", "status": "online", "hidden_shop": False,
                      "visible": i < offered, "loyalty_points": 2 if i < understood else "zwei"}
            data = json.dumps({"loaderData": {"0": {"view": {"page": {"bonded_data": bonded}}}}})
            self.server.route(f"/partner/{name}", Reply(body=self.PAGE.format(data=data).encode()))


class ExamplePortal(Portal):
    programme, scraper = "example", staticmethod(scrape_example)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "EXAMPLE_CATALOGUE_URL": f"{self.server.url}/catalogue-1.html"}

    def publish(self, shops: int, offered: Optional[int] = None, understood: Optional[int] = None) -> None:
        offered, understood = self._split(shops, offered, understood)
        items = "".join(
            f'<li class="shop" data-shop-id="ex-{i}"><a class="name" href="https://shop{i}.example/">Shop {i}</a>'
            f' <span class="rate">{"2 Punkte pro 1 €" if i < understood else UNKNOWN_RATE}</span></li>'
            for i in range(offered))
        page = ('<html><body><p class="pager">Seite <span class="page">1</span> von <span class="pages">1</span>'
                f'</p><ul class="shops">{items}</ul></body></html>')
        self.server.route("/catalogue-1.html", Reply(body=page.encode(), headers={"Content-Type": "text/html"}))


PORTALS = (PaybackPortal, MilesAndMorePortal, ExamplePortal)
