"""Tests for the polite fetcher, against scriptable loopback servers only."""

from __future__ import annotations

import gzip
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from scrapers.fetcher import Fetcher, FetchError, FetchSettings, RobotsDisallowed, RobotsUnreachable
from scripted_server import Reply, ScriptedServer, fetch

pytestmark = pytest.mark.timeout(30)

# Loopback is refused by the address guard unless allowed; these tests allow 127.0.0.1 on any port.
FAST = FetchSettings(retries=2, backoff_factor=0, min_interval=0, total_timeout=10, allowed_hosts=("127.0.0.1",))



def test_get_returns_decoded_body_and_sends_user_agent(server: ScriptedServer) -> None:
    server.route("/page", Reply(body=gzip.compress(b"<p>hallo</p>"), headers={"Content-Encoding": "gzip"}))
    with Fetcher(FAST) as fetcher:
        assert fetcher.get(f"{server.url}/page", params={"seite": 2}) == b"<p>hallo</p>"
    assert server.user_agents == [FAST.user_agent, FAST.user_agent]  # robots.txt, then the page


@pytest.mark.parametrize("trickle", [1.0, 1.9])
def test_trickling_server_fails_within_total_budget(server: ScriptedServer, trickle: float) -> None:
    # Each byte arrives within the read timeout, so only the total budget can stop this;
    # at 1.9 s a byte, only the watchdog (not a check between reads) stops it in time.
    server.route("/slow", Reply(body=b"x" * 100, trickle=trickle))  # would need 100+ s
    started = time.monotonic()
    result = fetch(replace(FAST, total_timeout=2), f"{server.url}/slow")
    elapsed = time.monotonic() - started
    assert isinstance(result, FetchError)
    assert "Zeitbudget" in str(result)
    assert elapsed < 3.5


@pytest.mark.parametrize("with_length", [False, True], ids=["streamed", "content-length"])
def test_oversized_body_is_refused(server: ScriptedServer, with_length: bool) -> None:
    server.route("/big", Reply(body=b"x" * 50_000, chunked=not with_length))
    result = fetch(replace(FAST, max_bytes=1000), f"{server.url}/big")
    assert isinstance(result, FetchError)
    assert "größer als 1000 Bytes" in str(result)
    assert ("Content-Length 50000" in str(result)) == with_length  # refused before reading


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(server: ScriptedServer, status: int) -> None:
    server.route("/busy", Reply(status, b"later", {"Retry-After": "1"}), Reply(body=b"done"))
    started = time.monotonic()
    result = fetch(FAST, f"{server.url}/busy")
    elapsed = time.monotonic() - started
    assert result == b"done"
    assert server.hits["/busy"] == 2
    assert 0.9 <= elapsed < 5


def test_too_long_retry_after_fails_fast(server: ScriptedServer) -> None:
    server.route("/busy", Reply(503, b"later", {"Retry-After": "86400"}), Reply(body=b"done"))
    started = time.monotonic()
    result = fetch(replace(FAST, max_retry_after=5), f"{server.url}/busy")
    assert time.monotonic() - started < 2
    assert isinstance(result, FetchError)
    assert "Retry-After: 86400" in str(result)
    assert server.hits["/busy"] == 1


def test_retry_after_beyond_budget_fails_fast(server: ScriptedServer) -> None:
    server.route("/busy", Reply(503, b"later", {"Retry-After": "5"}), Reply(body=b"done"))
    started = time.monotonic()
    result = fetch(replace(FAST, total_timeout=2, max_retry_after=30), f"{server.url}/busy")
    assert time.monotonic() - started < 1.5
    assert isinstance(result, FetchError)
    assert "Zeitbudget" in str(result)
    assert server.hits["/busy"] == 1


def test_retry_attempt_gets_only_the_remaining_budget(server: ScriptedServer) -> None:
    server.route("/hang", Reply(503, b"later", {"Retry-After": "2"}), Reply(body=b"late", delay=20))
    started = time.monotonic()
    result = fetch(replace(FAST, total_timeout=3), f"{server.url}/hang")
    assert isinstance(result, FetchError)
    assert time.monotonic() - started < 4  # a fresh 3 s read timeout on the retry would end at 5 s
    assert server.hits["/hang"] == 2


def test_backoff_beyond_budget_fails_fast(server: ScriptedServer) -> None:
    server.route("/down", Reply(503, b"down"))
    settings = replace(FAST, retries=3, backoff_factor=10, total_timeout=2)  # second backoff: 20 s
    started = time.monotonic()
    result = fetch(settings, f"{server.url}/down")
    assert time.monotonic() - started < 1.5
    assert isinstance(result, FetchError)
    assert "Zeitbudget" in str(result)
    assert server.hits["/down"] == 2  # the first retry has no backoff


def test_persistent_server_error_names_status(server: ScriptedServer) -> None:
    server.route("/down", Reply(500, b"down"))
    result = fetch(FAST, f"{server.url}/down")
    assert isinstance(result, FetchError)
    assert "HTTP 500" in str(result)
    assert server.hits["/down"] == 3


def test_robots_disallow_sends_no_request(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    server.route("/public", Reply(body=b"public"))
    with Fetcher(FAST) as fetcher:
        with pytest.raises(RobotsDisallowed, match="verbietet"):
            fetcher.get(f"{server.url}/private/page")
        assert fetcher.get(f"{server.url}/public") == b"public"
    assert server.hits == Counter({"/robots.txt": 1, "/public": 1})


def test_robots_group_for_our_agent_applies(server: ScriptedServer) -> None:
    robots = b"User-agent: Bonusvergleich-Scraper\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    server.route("/robots.txt", Reply(body=robots))
    result = fetch(FAST, f"{server.url}/page")
    assert isinstance(result, RobotsDisallowed)
    assert server.hits["/page"] == 0


def test_missing_robots_allows_everything(server: ScriptedServer) -> None:
    server.route("/page", Reply(body=b"page"))  # /robots.txt answers 404
    assert fetch(FAST, f"{server.url}/page") == b"page"
    assert server.hits["/robots.txt"] == 1


def test_robots_server_error_refuses_host_and_says_unreachable(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(500, b"oops"))
    server.route("/page", Reply(body=b"page"))
    with Fetcher(FAST) as fetcher:
        for _ in range(2):
            with pytest.raises(RobotsUnreachable, match="robots.txt von .* nicht erreichbar .*HTTP 500"):
                fetcher.get(f"{server.url}/page")
    assert server.hits["/page"] == 0
    assert server.hits["/robots.txt"] == 3  # one fetch, retried twice, then cached


def test_not_found_names_status(server: ScriptedServer) -> None:
    result = fetch(FAST, f"{server.url}/missing")
    assert isinstance(result, FetchError)
    assert "404" in str(result) and "/missing" in str(result)


def test_get_many_limits_requests_in_flight(server: ScriptedServer) -> None:
    for index in range(12):
        server.route(f"/slow/{index}", Reply(body=b"page %d" % index, delay=0.2))
    urls = [f"{server.url}/slow/{index}" for index in range(12)]
    with Fetcher(replace(FAST, host_concurrency=2)) as fetcher:
        results = dict(fetcher.get_many(urls))
    assert results == {f"{server.url}/slow/{index}": b"page %d" % index for index in range(12)}
    assert server.max_in_flight == 2
    assert server.hits["/robots.txt"] == 1


def test_host_limit_holds_across_threads(server: ScriptedServer) -> None:
    server.route("/slow", Reply(body=b"slow", delay=0.2))
    with Fetcher(replace(FAST, host_concurrency=2)) as fetcher, ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(lambda _: fetcher.get(f"{server.url}/slow"), range(6)))
    assert bodies == [b"slow"] * 6
    assert server.max_in_flight == 2


# Sends are spaced from the moment the gate marks a start to the next; the call into the session
# lies microseconds after that mark, so two measured sends may come up to this much closer.
MARK_TO_SEND = 0.001


def _send_times(fetcher: Fetcher) -> list[float]:
    """When the fetcher sent each request, taken on its side: the server's clock adds its own delays."""
    sent: list[float] = []
    send = fetcher._session.get

    def timed_send(*args, **kwargs):
        sent.append(time.monotonic())
        return send(*args, **kwargs)

    fetcher._session.get = timed_send  # type: ignore[method-assign]
    return sent


def test_request_starts_keep_min_interval(server: ScriptedServer) -> None:
    server.route("/page", Reply(body=b"page"))
    with Fetcher(replace(FAST, min_interval=0.2)) as fetcher:
        starts = _send_times(fetcher)
        for _ in range(5):
            fetcher.get(f"{server.url}/page")
    assert len(server.starts) == len(starts) == 6  # robots.txt counts as a request too
    assert all(later - earlier >= 0.2 - MARK_TO_SEND for earlier, later in zip(starts, starts[1:]))


def test_crawl_delay_widens_interval(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 1\n"))
    server.route("/page", Reply(body=b"page"))
    with Fetcher(replace(FAST, min_interval=0.1)) as fetcher:
        starts = _send_times(fetcher)
        for _ in range(2):
            fetcher.get(f"{server.url}/page")
    assert [path for path, _ in server.starts] == ["/robots.txt", "/page", "/page"]
    assert all(later - earlier >= 1.0 - MARK_TO_SEND for earlier, later in zip(starts, starts[1:]))


def test_get_many_reports_failures_per_url(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    server.route("/a", Reply(body=b"a"))
    server.route("/b", Reply(body=b"b"))
    urls = [f"{server.url}/{path}" for path in ("a", "missing", "private/x", "b")]
    with Fetcher(FAST) as fetcher:
        results = dict(fetcher.get_many(urls))
    assert results[urls[0]] == b"a" and results[urls[3]] == b"b"
    assert isinstance(results[urls[1]], FetchError) and "404" in str(results[urls[1]])
    assert isinstance(results[urls[2]], RobotsDisallowed)
    assert server.hits["/private/x"] == 0


def test_invalid_url_is_a_fetch_error() -> None:
    with Fetcher(FAST) as fetcher:
        with pytest.raises(FetchError, match="Ungültige URL"):
            fetcher.get("ftp://example.invalid/file")


def test_settings_from_config() -> None:
    settings = FetchSettings.from_config(
        {"SCRAPER_TIMEOUT": 7, "SCRAPER_MAX_BYTES": "2048", "SCRAPER_USER_AGENT": "Test/1", "OTHER": 1}
    )
    assert settings == replace(FetchSettings(), read_timeout=7.0, max_bytes=2048, user_agent="Test/1")


def test_retries_keep_the_host_interval(server: ScriptedServer) -> None:
    server.route("/flaky", Reply(503, b"busy"), Reply(503, b"busy"), Reply(body=b"done"))
    with Fetcher(replace(FAST, min_interval=0.3, retries=3)) as fetcher:
        starts = _send_times(fetcher)
        assert fetcher.get(f"{server.url}/flaky") == b"done"
        flaky = [sent for sent, (path, _) in zip(starts, server.starts) if path == "/flaky"]
    assert len(flaky) == 3
    assert all(later - earlier >= 0.3 - MARK_TO_SEND for earlier, later in zip(flaky, flaky[1:]))  # interval 0.3
