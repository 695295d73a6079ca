"""Serve the sample catalogues bundled with the project from loopback.

Scrapers then fetch them over real HTTP with the same code path they use for
the public sites, so a machine without internet can run every scraper.
"""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).with_name("samples")


class _SampleHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("sample server: " + format, *args)


@contextmanager
def serve_sample_data() -> Iterator[str]:
    """Serve ``samples/`` on a free loopback port; yield its base URL."""
    handler = functools.partial(_SampleHandler, directory=str(SAMPLE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="sample-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
