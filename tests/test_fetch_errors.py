"""Fetch failures read as German sentences naming the host; the log gets one line per failure."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from flask import Flask

from job_queue import job_queue
from scrapers.fetcher import Fetcher, FetchError, FetchSettings
from scrapers.miles_and_more import scrape_miles_and_more
from scrapers.payback import scrape_payback
from scripted_server import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(60)

INTERNALS = ("urllib3", "HTTPConnectionPool", "object at 0x", "Max retries", "NewConnectionError", "Caused by")
SETTINGS = FetchSettings(retries=0, min_interval=0, total_timeout=10, allowed_hosts=("127.0.0.1",))


def failure(settings: FetchSettings, url: str) -> str:
    with Fetcher(settings) as fetcher:
        with pytest.raises(FetchError) as caught:
            fetcher.get(url)
    message = str(caught.value)
    assert not [word for word in INTERNALS if word in message], message
    return message


def test_refused_connection() -> None:
    message = failure(SETTINGS, "http://127.0.0.1:9/page")
    assert "Verbindung abgelehnt: 127.0.0.1:9" in message


def test_unknown_host_hints_at_offline_mode(monkeypatch) -> None:
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    message = failure(SETTINGS, "https://www.payback.de/onsflows/api/digital-shops")
    assert message.startswith("Host nicht erreichbar (DNS): www.payback.de")
    assert "SCRAPER_SOURCES=offline" in message


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in accepted:
        sock.close()
    listener.close()


def test_server_that_never_answers_is_a_timeout(silent_server: int) -> None:
    settings = FetchSettings(retries=0, min_interval=0, read_timeout=1, allowed_hosts=("127.0.0.1",))
    message = failure(settings, f"http://127.0.0.1:{silent_server}/page")
    assert "Zeitüberschreitung" in message and "127.0.0.1" in message


def test_tls_failure(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=b""))
    message = failure(SETTINGS, f"https://127.0.0.1:{server.httpd.server_port}/page")  # it speaks plain HTTP
    assert "TLS-Fehler bei 127.0.0.1" in message


def run(app: Flask, func) -> dict:
    with app.app_context():
        job_id = job_queue.enqueue(func)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def test_unreachable_source_fails_the_job_with_one_log_line(make_app, caplog) -> None:
    app = make_app(SCRAPER_SOURCES="online", SCRAPER_ALLOWED_HOSTS="127.0.0.1:9",
                   PAYBACK_CATALOGUE_URL="http://127.0.0.1:9/onsflows/api/digital-shops",
                   MILES_AND_MORE_SITEMAP_URL="http://127.0.0.1:9/sitemap.xml")
    for func in (scrape_payback, scrape_miles_and_more):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            snapshot = run(app, func)
        assert snapshot["status"] == "failed"
        assert "robots.txt von http://127.0.0.1:9 nicht erreichbar" in snapshot["error"]
        assert "Verbindung abgelehnt: 127.0.0.1:9" in snapshot["error"]
        assert not [word for word in INTERNALS if word in snapshot["error"]]
        assert snapshot["progress_percent"] < 100
        problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert len(problems) == 1, [record.getMessage() for record in problems]
        assert problems[0].exc_info is None and "Verbindung abgelehnt" in problems[0].getMessage()
