"""Where each scraper reads from: the configured public URL, or bundled samples.

``SCRAPER_SOURCES=offline`` makes every scraper read the sample catalogues in
``samples/`` from a loopback server, in exactly the public formats, so the
whole product runs on a machine without internet.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from scrapers.sample_server import serve_sample_data

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Source:
    """Where a run starts, whether it is sample data, and which loopback host to allow."""

    url: str
    is_sample: bool
    # host:port exempt from the address guard: the bundled sample server, nothing else.
    allowed_hosts: tuple[str, ...] = ()
    # scheme://host of the live source, for links to shoppers that must not name the sample server.
    public_origin: Optional[str] = None

    def public_url(self, url: str) -> str:
        """``url`` as shoppers reach it: on the live site's origin, never on the sample server."""
        if not (self.is_sample and self.public_origin):
            return url
        parts, public = urlsplit(url), urlsplit(self.public_origin)
        return urlunsplit((public.scheme, public.netloc, parts.path, parts.query, ""))


def offline_mode() -> bool:
    """Tell whether scrapers read the bundled samples instead of the live sites."""
    return current_app.config["SCRAPER_SOURCES"] == OFFLINE


@contextmanager
def open_source(sample: str, config_key: str, sample_path: str) -> Iterator[Source]:
    """Yield the run's start URL: ``config[config_key]``, or the served sample.

    The sample is used in offline mode and when the key is empty; its server's
    host:port is then the one loopback host the run's fetcher may reach.
    """
    url = current_app.config.get(config_key)
    if url and not offline_mode():
        yield Source(url, is_sample=False)
        return
    public = urlsplit(url) if url else None
    public_origin = f"{public.scheme}://{public.netloc}" if public and public.netloc else None
    with serve_sample_data(sample) as site:
        yield Source(site.url + sample_path, True, (site.host,), public_origin)
