"""A slow resolver cannot stretch a fetch or a webhook attempt past its time budget.

``getaddrinfo`` blocks and cannot be interrupted: before, a name that took
30 s to resolve held a scrape or the delivery thread for 30 s, whatever
the budget said.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from scrapers.fetcher import Fetcher, FetchError, FetchSettings
from scripted_server import Reply, ScriptedServer
from webhooks.sender import SenderSettings, WebhookSender

RESOLVER_DELAY = 6.0  # seconds the slow name takes to resolve
BUDGET = 1.0  # seconds one fetch or attempt may take in all

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def slow_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """``slow.example`` resolves to 127.0.0.1, after RESOLVER_DELAY seconds; other names as usual."""
    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "slow.example":
            release.wait(RESOLVER_DELAY)
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield "slow.example"
    release.set()  # let the abandoned look-ups end


def test_a_fetch_ends_within_its_budget_while_the_name_is_still_resolving(slow_name: str,
                                                                         server: ScriptedServer) -> None:
    server.route("/page", Reply(body=b"ok"))
    settings = FetchSettings(retries=0, min_interval=0, total_timeout=BUDGET, connect_timeout=BUDGET,
                             allowed_hosts=(slow_name,))
    started = time.monotonic()
    with Fetcher(settings) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(f"http://{slow_name}:{server.httpd.server_port}/page")
    elapsed = time.monotonic() - started
    assert elapsed < RESOLVER_DELAY / 2, f"the fetch took {elapsed:.1f} s with a budget of {BUDGET} s"
    assert "DNS" in str(caught.value) and slow_name in str(caught.value), str(caught.value)
    assert server.hits == {} or "/page" not in server.hits


def test_a_webhook_attempt_ends_within_its_budget_while_the_name_is_still_resolving(slow_name: str,
                                                                                   server: ScriptedServer) -> None:
    server.route("/hook", Reply(body=b"ok"))
    settings = SenderSettings(connect_timeout=BUDGET, read_timeout=BUDGET, total_timeout=BUDGET,
                              allowed_hosts=(slow_name,))
    started = time.monotonic()
    with WebhookSender(settings) as sender:
        result = sender.post(f"http://{slow_name}:{server.httpd.server_port}/hook", b"{}", {})
    elapsed = time.monotonic() - started
    assert elapsed < RESOLVER_DELAY / 2, f"the attempt took {elapsed:.1f} s with a budget of {BUDGET} s"
    assert not result.succeeded and result.error, result
