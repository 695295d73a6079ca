"""Serve the sample catalogues bundled with the project from loopback.

Scrapers then fetch them over real HTTP with the same code path they use for
the public sites, so a machine without internet can run every scraper
(``SCRAPER_SOURCES=offline``) and tests never reach the real hosts. Each
source gets its own server, so robots.txt is read from its root as online.

Besides plain files the server imitates the little the real sites do
dynamically: ``{BASE_URL}`` in XML and text files becomes the server's own
address; ``/partner/<name>?noredirect=1`` serves ``partner/<name>.html``, while
without ``noredirect=1`` it answers, like the live portal, with a 302 to a
bot-protected host that refuses non-browser clients with 403 (a second
loopback server, the "bot wall", which counts its hits); and the PAYBACK
catalogue endpoint pages ``digital-shops.json`` by ``pageSize`` and
``pageOffset`` (an item offset).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).with_name("samples")
PAYBACK_ENDPOINT = "/onsflows/api/digital-shops"


@dataclass
class SampleSite:
    """A running sample server: its base URL, its host:port, and its bot wall."""

    url: str
    host: str
    bot_wall_url: str
    bot_wall_hits: Counter = field(default_factory=Counter)  # path -> requests the bot wall refused


class _BotWallHandler(BaseHTTPRequestHandler):
    """The bot-protected public host: 403 for every client that is not a browser (all of ours)."""

    hits: Counter

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.hits[urlsplit(self.path).path] += 1
        self.send_error(403, "Forbidden: automated access is not allowed")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("bot wall: " + format, *args)


class LoopbackReplies:
    """Answers of a loopback stand-in for the portals, for ``http.server`` request handlers.

    Mixed into this module's sample handler and into the benchmarks' loopback
    sources (``bench/loopback_sources.py``), so both page the catalogue exactly
    as the live PAYBACK endpoint does (``pageSize`` items from ``pageOffset``).
    """

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_catalogue_page(self, items: list[Any], total: int, query: dict[str, list[str]]) -> None:
        try:
            size = int(query.get("pageSize", ["20"])[0])
            offset = int(query.get("pageOffset", ["0"])[0])
        except ValueError:
            self.send_error(400, "pageSize and pageOffset must be integers")
            return
        page = {"totalResultSize": total, "digitalShopListItem": items[offset : offset + size]}
        self._send(json.dumps(page, ensure_ascii=False).encode("utf-8"), "application/json")


class _SampleHandler(LoopbackReplies, SimpleHTTPRequestHandler):
    bot_wall_url = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("sample server: " + format, *args)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        root = Path(self.directory)
        if url.path == PAYBACK_ENDPOINT and (root / "digital-shops.json").exists():
            catalogue = json.loads((root / "digital-shops.json").read_text(encoding="utf-8"))
            return self._send_catalogue_page(catalogue["digitalShopListItem"], catalogue["totalResultSize"],
                                             parse_qs(url.query))
        if url.path.startswith("/partner/") and url.path.count("/") == 2:
            page = root / "partner" / (url.path.rsplit("/", 1)[1] + ".html")
            if page.is_file() and parse_qs(url.query).get("noredirect") != ["1"]:
                return self._redirect(self.bot_wall_url + url.path)
            if page.is_file():
                return self._send(page.read_bytes(), "text/html; charset=utf-8")
        template = root / url.path.lstrip("/")
        if template.suffix in (".xml", ".txt") and template.is_file() and root in template.resolve().parents:
            body = template.read_text(encoding="utf-8").replace("{BASE_URL}", self.base_url)
            content_type = "application/xml" if template.suffix == ".xml" else "text/plain"
            return self._send(body.encode("utf-8"), f"{content_type}; charset=utf-8")
        super().do_GET()


@contextmanager
def _serve(handler: Any, name: str) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_sample_data(source: str) -> Iterator[SampleSite]:
    """Serve ``samples/<source>/`` on a free loopback port, beside its bot wall."""
    directory = SAMPLE_DIR / source
    if not directory.is_dir():
        raise LookupError(f"no sample data for {source!r}")
    hits: Counter = Counter()
    with ExitStack() as stack:
        wall_handler = type("BotWall", (_BotWallHandler,), {"hits": hits})
        wall = stack.enter_context(_serve(wall_handler, f"sample-bot-wall-{source}"))
        wall_url = f"http://127.0.0.1:{wall.server_port}"
        sample_handler = type("SampleHandler", (_SampleHandler,), {"bot_wall_url": wall_url})
        server = stack.enter_context(
            _serve(functools.partial(sample_handler, directory=str(directory)), f"sample-server-{source}")
        )
        host = f"127.0.0.1:{server.server_port}"
        yield SampleSite(f"http://{host}", host, wall_url, hits)
