"""A fast loopback imitation of both live sources: the Miles & More portal and the PAYBACK catalogue.

Why
    A benchmark of the scrapers (or of the site while they run) must never
    reach the real hosts, yet must make the scrapers do the real work: as many
    partner pages as the live portal has (536), in the live page shape, and a
    PAYBACK catalogue of the live size (706 shops). The bundled samples
    (``scrapers/samples/``) have the live shapes but only 30 pages and 40
    shops, so this module clones them with distinct ids and names.

What is served (one server, one port, so one ``SCRAPER_ALLOWED_HOSTS`` entry)
    * ``/robots.txt`` - disallows ``/api`` and names the sitemap, as the portal's does;
    * ``/sitemap.xml`` - every ``/partner/<unique_name>`` page;
    * ``/partner/<unique_name>`` - a sample page with its ``bonded_data`` renamed;
    * ``/onsflows/api/digital-shops`` - the catalogue paged by ``pageSize`` and
      ``pageOffset`` (an item offset), with ``totalResultSize``.

Each partner page may wait ``latency`` seconds first (the portal's own response
time); the server counts requests and the most in flight at once.

Run on its own (the responsiveness bench does, so its threads share no
interpreter lock with the load generator)::

    python bench/loopback_sources.py [--pages 536] [--shops 706] [--latency 0] [--page-bytes 120000]

It prints ``READY <port>`` once it listens and serves until it is terminated.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script in its own process (served_app.start_source)
    sys.path.insert(0, str(REPO_ROOT))

from scrapers.sample_server import PAYBACK_ENDPOINT, LoopbackReplies  # noqa: E402

SAMPLES = REPO_ROOT / "scrapers" / "samples"
#: As many partner pages as the live portal listed (2026-11) and shops as the live catalogue.
LIVE_PARTNER_PAGES = 536
LIVE_PAYBACK_SHOPS = 706
#: Size of a live partner page: the samples keep only what the parser reads (about 1.6 KB), a live
#: page carries navigation, tiles and footer around it (about 120 KB, as measured for issue 14's
#: parser work), and the HTML tokenizer pays for every byte of it.
LIVE_PAGE_BYTES = 120_000
_TILE = ('<li class="partner-tile"><a class="partner-link" href="/partner/similar_{k}">'
         '<img src="https://static.example/logo-{k}.png" alt="">Ähnlicher Partner {k}</a>'
         '<span class="earn-rate">1 Meile pro 1 €</span></li>\n')

_ROUTER_DATA = re.compile(r'(<script type="application/json" id="__STATIC_ROUTER_DATA__">)(.*?)(</script>)', re.S)


class PortalStats:
    """Requests seen by the loopback source, and the most in flight at once."""

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


def _sample_partner_pages() -> list[tuple[str, str]]:
    folder = SAMPLES / "miles_and_more" / "partner"
    return [(path.stem, path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.html"))]


def _padded(html: str, page_bytes: int) -> str:
    """``html`` with tiles of similar partners before ``</main>`` until it is about ``page_bytes`` long."""
    missing = page_bytes - len(html.encode("utf-8"))
    if missing <= 0 or "</main>" not in html:
        return html
    tiles, k = [], 0
    while missing > 0:
        tile = _TILE.format(k=k)
        tiles.append(tile)
        missing -= len(tile.encode("utf-8"))
        k += 1
    return html.replace("</main>", f'<aside class="similar-partners"><ul>\n{"".join(tiles)}</ul></aside></main>', 1)


def live_partner_pages(count: int = LIVE_PARTNER_PAGES, page_bytes: int = LIVE_PAGE_BYTES) -> dict[str, bytes]:
    """Return ``count`` partner pages (path -> body) in the live shape, cloned from the samples.

    Each clone gets its own ``unique_name``, ``partner_id`` and name, so the
    scraper stores ``count`` distinct partners; everything else (campaigns,
    hints, statuses, hidden partners) is the sample's, and each page is padded
    with markup to ``page_bytes`` (0: the sample's size), so parsing costs
    about what a live page costs.
    """
    samples = _sample_partner_pages()
    pages: dict[str, bytes] = {}
    for index in range(count):
        stem, html = samples[index % len(samples)]
        match = _ROUTER_DATA.search(html)
        if match is None:
            raise ValueError(f"sample {stem} has no __STATIC_ROUTER_DATA__")
        data = json.loads(match.group(2))
        bonded = data["loaderData"]["0"]["view"]["page"]["bonded_data"]
        unique_name = f"{stem}_{index:04d}"
        bonded["unique_name"] = unique_name
        bonded["partner_id"] = str(100000 + index)
        bonded["name"] = f"{bonded.get('name', stem)} {index}"
        script = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
        body = _padded(html[:match.start(2)] + script + html[match.end(2):], page_bytes)
        pages[f"/partner/{unique_name}"] = body.encode("utf-8")
    return pages


def payback_catalogue(count: int = LIVE_PAYBACK_SHOPS) -> list[dict[str, Any]]:
    """Return ``count`` catalogue items in the live shape, cloned from the sample with distinct ids."""
    sample = json.loads((SAMPLES / "payback" / "digital-shops.json").read_text(encoding="utf-8"))
    items = sample["digitalShopListItem"]
    catalogue = []
    for index in range(count):
        item = copy.deepcopy(items[index % len(items)])
        partner = item["partner"]
        partner["partnerShortName"] = f"{partner['partnerShortName']}-{index:04d}"
        partner["partnerDisplayName"] = f"{partner['partnerDisplayName']} {index}"
        if isinstance(item.get("partnerVanityName"), str):
            item["partnerVanityName"] = f"{item['partnerVanityName']}-{index:04d}"
        catalogue.append(item)
    return catalogue


@dataclass
class LoopbackSource:
    """A running loopback source: where it is and what it saw."""

    base: str
    stats: PortalStats

    @property
    def host(self) -> str:
        """``host:port``, the form ``SCRAPER_ALLOWED_HOSTS`` takes."""
        return self.base.removeprefix("http://")

    @property
    def sitemap_url(self) -> str:
        return f"{self.base}/sitemap.xml"

    @property
    def catalogue_url(self) -> str:
        return f"{self.base}{PAYBACK_ENDPOINT}"


def _handler(partner_pages: dict[str, bytes], catalogue: list[dict[str, Any]], latency: float,
             stats: PortalStats) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackReplies, BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body as separate writes must not stall

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            pass

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            stats.enter()
            try:
                url = urlsplit(self.path)
                base = f"http://127.0.0.1:{self.server.server_port}"
                if url.path == "/robots.txt":
                    body = f"User-agent: *\nDisallow: /api\nSitemap: {base}/sitemap.xml\n".encode()
                    self._send(body, "text/plain; charset=utf-8")
                elif url.path == "/sitemap.xml":
                    urls = "".join(f"<url><loc>{base}{path}</loc></url>" for path in partner_pages)
                    self._send(('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/'
                                f'schemas/sitemap/0.9">{urls}</urlset>').encode(), "application/xml")
                elif url.path in partner_pages:
                    if latency:
                        time.sleep(latency)  # the portal's own response time
                    self._send(partner_pages[url.path], "text/html; charset=utf-8")
                elif url.path == PAYBACK_ENDPOINT and catalogue:
                    self._send_catalogue_page(catalogue, len(catalogue), parse_qs(url.query))
                else:
                    self.send_error(404)
            finally:
                stats.leave()

    return Handler


@contextmanager
def serve_sources(partner_pages: Optional[dict[str, bytes]] = None,
                  catalogue: Optional[list[dict[str, Any]]] = None,
                  latency: float = 0.0, port: int = 0) -> Iterator[LoopbackSource]:
    """Serve the portal and the catalogue on 127.0.0.1 (a free port unless ``port``) while the block runs."""
    stats = PortalStats()
    pages = live_partner_pages() if partner_pages is None else partner_pages
    shops = payback_catalogue() if catalogue is None else catalogue
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(pages, shops, latency, stats))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="loopback-source", daemon=True)
    thread.start()
    try:
        yield LoopbackSource(f"http://127.0.0.1:{server.server_port}", stats)
    finally:
        server.shutdown()
        server.server_close()


def main(argv: Optional[list[str]] = None) -> None:
    """Serve until the process is terminated (the bench's ``ProcessGroup.stop``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=LIVE_PARTNER_PAGES)
    parser.add_argument("--shops", type=int, default=LIVE_PAYBACK_SHOPS)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per partner page")
    parser.add_argument("--page-bytes", type=int, default=LIVE_PAGE_BYTES, help="size of a partner page")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with serve_sources(live_partner_pages(args.pages, args.page_bytes), payback_catalogue(args.shops),
                       args.latency, args.port) as source:
        print(f"READY {source.base.rsplit(':', 1)[1]}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
