"""Serve the sample catalogues bundled with the project from loopback.

Scrapers then fetch them over real HTTP with the same code path they use for
the public sites, so a machine without internet can run every scraper
(``SCRAPER_SOURCES=offline``) and tests never reach the real hosts. Each
source gets its own server, so robots.txt is read from its root as online.

Besides plain files the server imitates the little the real sites do
dynamically: ``{BASE_URL}`` in XML and text files becomes the server's own
address, ``/partner/<name>`` serves ``partner/<name>.html`` (query ignored), and
the PAYBACK catalogue endpoint pages ``digital-shops.json`` by ``pageSize`` and
``pageOffset`` (an item offset).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).with_name("samples")
PAYBACK_ENDPOINT = "/onsflows/api/digital-shops"
MILES_AND_MORE_SITEMAP = "/sitemap.xml"


class _SampleHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("sample server: " + format, *args)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        root = Path(self.directory)
        if url.path == PAYBACK_ENDPOINT and (root / "digital-shops.json").exists():
            return self._send_catalogue_page(root / "digital-shops.json", parse_qs(url.query))
        if url.path.startswith("/partner/") and url.path.count("/") == 2:
            page = root / "partner" / (url.path.rsplit("/", 1)[1] + ".html")
            if page.is_file():
                return self._send(page.read_bytes(), "text/html; charset=utf-8")
        template = root / url.path.lstrip("/")
        if template.suffix in (".xml", ".txt") and template.is_file() and root in template.resolve().parents:
            body = template.read_text(encoding="utf-8").replace("{BASE_URL}", self.base_url)
            content_type = "application/xml" if template.suffix == ".xml" else "text/plain"
            return self._send(body.encode("utf-8"), f"{content_type}; charset=utf-8")
        super().do_GET()

    def _send_catalogue_page(self, path: Path, query: dict[str, list[str]]) -> None:
        catalogue = json.loads(path.read_text(encoding="utf-8"))
        try:
            size = int(query.get("pageSize", ["20"])[0])
            offset = int(query.get("pageOffset", ["0"])[0])
        except ValueError:
            self.send_error(400, "pageSize and pageOffset must be integers")
            return
        items = catalogue["digitalShopListItem"][offset : offset + size]
        page = {"totalResultSize": catalogue["totalResultSize"], "digitalShopListItem": items}
        self._send(json.dumps(page, ensure_ascii=False).encode("utf-8"), "application/json")


@contextmanager
def serve_sample_data(source: str) -> Iterator[str]:
    """Serve ``samples/<source>/`` on a free loopback port; yield its base URL."""
    directory = SAMPLE_DIR / source
    if not directory.is_dir():
        raise LookupError(f"no sample data for {source!r}")
    handler = functools.partial(_SampleHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"sample-server-{source}", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
