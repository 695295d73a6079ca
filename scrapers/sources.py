"""Where each scraper reads from: the configured public URL, or bundled samples.

``SCRAPER_SOURCES=offline`` makes every scraper read the sample catalogues in
``samples/`` from a loopback server, in exactly the public formats, so the
whole product runs on a machine without internet.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from flask import current_app

from scrapers.sample_server import serve_sample_data

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Source:
    """The URL a run starts from and whether it is sample data."""

    url: str
    is_sample: bool


def offline_mode() -> bool:
    """Tell whether scrapers read the bundled samples instead of the live sites."""
    return current_app.config["SCRAPER_SOURCES"] == OFFLINE


@contextmanager
def open_source(sample: str, config_key: str, sample_path: str) -> Iterator[Source]:
    """Yield the run's start URL: ``config[config_key]``, or the served sample.

    The sample is used in offline mode and when the key is empty.
    """
    url = current_app.config.get(config_key)
    if url and not offline_mode():
        yield Source(url, is_sample=False)
        return
    with serve_sample_data(sample) as base_url:
        yield Source(base_url + sample_path, is_sample=True)
