"""The fetcher against hostile servers: redirects, internal addresses, drips, bombs, robots.txt."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from scrapers.address_guard import AddressGuard, AddressRefused, GuardedHTTPAdapter
from scrapers.fetcher import AddressNotAllowed, Fetcher, FetchError, FetchSettings, RobotsDisallowed
from scripted_server import Reply, ScriptedServer, fetch

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
BASE = FetchSettings(retries=0, backoff_factor=0, min_interval=0, total_timeout=10)


def allowing(scripted: ScriptedServer, settings: FetchSettings = BASE) -> FetchSettings:
    """``settings`` with exactly this server's host:port allowed (loopback is refused otherwise)."""
    return settings.allowing(f"127.0.0.1:{scripted.httpd.server_port}")



@pytest.fixture
def other_server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


# -- redirects ----------------------------------------------------------------------

def test_redirect_is_followed_within_the_allowed_host(server: ScriptedServer) -> None:
    server.redirect("/old", "/new", status=301)
    server.route("/new", Reply(body=b"new"))
    assert fetch(allowing(server), f"{server.url}/old") == b"new"


@pytest.mark.parametrize("where", ["other port", "other loopback host"])
def test_redirect_to_another_internal_host_or_port_is_refused(
    server: ScriptedServer, other_server: ScriptedServer, where: str
) -> None:
    other_server.route("/secret", Reply(body=b"secret"))
    if where == "other port":
        target = f"{other_server.url}/secret"
    else:
        target = f"http://127.0.0.2:{server.httpd.server_port}/secret"
    server.redirect("/jump", target)
    result = fetch(allowing(server), f"{server.url}/jump")
    assert isinstance(result, AddressNotAllowed), result
    assert "interne Adresse" in str(result)
    assert other_server.hits["/secret"] == 0 and server.hits["/secret"] == 0


@pytest.mark.parametrize("location", ["http://[::1", "http://host:99999/x", "http://[fe80::1%25zz"])
def test_a_redirect_to_a_broken_url_is_a_fetch_error(server: ScriptedServer, location: str) -> None:
    server.redirect("/jump", location)
    result = fetch(allowing(server), f"{server.url}/jump")
    assert isinstance(result, FetchError) and "Ungültige URL" in str(result), repr(result)


@pytest.mark.parametrize("redirects, ok", [(5, True), (6, False)])
def test_redirect_chains_end_after_five_hops(server: ScriptedServer, redirects: int, ok: bool) -> None:
    for hop in range(redirects):
        server.redirect(f"/hop{hop}", f"/hop{hop + 1}")
    server.route(f"/hop{redirects}", Reply(body=b"end"))
    result = fetch(allowing(server), f"{server.url}/hop0")
    if ok:
        assert result == b"end"
    else:
        assert isinstance(result, FetchError) and "Mehr als 5 Weiterleitungen" in str(result)
        assert server.hits[f"/hop{redirects}"] == 0


def test_robots_txt_of_the_redirect_target_is_honoured(
    server: ScriptedServer, other_server: ScriptedServer
) -> None:
    other_server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    other_server.route("/private/page", Reply(body=b"private"))
    server.redirect("/go", f"{other_server.url}/private/page")
    settings = allowing(other_server, allowing(server))
    result = fetch(settings, f"{server.url}/go")
    assert isinstance(result, RobotsDisallowed), result
    assert other_server.hits["/robots.txt"] == 1 and other_server.hits["/private/page"] == 0


def test_redirect_body_is_never_read(server: ScriptedServer) -> None:
    # 100 bytes, one a second: reading it would take 100 s.
    server.redirect("/slow-302", "/fast", body=b"x" * 100, trickle=1.0)
    server.route("/fast", Reply(body=b"fast"))
    started = time.monotonic()
    result = fetch(allowing(server, replace(BASE, total_timeout=3)), f"{server.url}/slow-302")
    assert result == b"fast"
    assert time.monotonic() - started < 3 + 2


# -- one budget for headers, body, hops ----------------------------------------------

@pytest.mark.parametrize("case", ["headers dripped", "302 body dripped, then a dripped page"])
def test_dripping_server_is_cut_at_the_budget(server: ScriptedServer, case: str) -> None:
    if case == "headers dripped":
        server.route("/drip", Reply(header_drip=1.0))
    else:
        server.redirect("/drip", "/page", body=b"x" * 100, trickle=1.0)
        server.route("/page", Reply(body=b"y" * 100, trickle=1.0))
    budget = 3.0
    started = time.monotonic()
    result = fetch(allowing(server, replace(BASE, total_timeout=budget, read_timeout=10)), f"{server.url}/drip")
    elapsed = time.monotonic() - started
    assert isinstance(result, FetchError) and "Zeitbudget von 3 s" in str(result), result
    assert "Zeitüberschreitung" in str(result)
    assert elapsed < budget + 2


BOMB_CLIENT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from scrapers.fetcher import Fetcher, FetchError, FetchSettings

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

settings = FetchSettings(retries=0, min_interval=0, total_timeout=30, allowed_hosts=("127.0.0.1",))
with Fetcher(settings) as fetcher:
    fetcher.get(sys.argv[2] + "/small")  # imports, session, robots.txt: all warm before measuring
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    started = time.monotonic()
    try:
        fetcher.get(sys.argv[2] + "/bomb-302")
        outcome = "read"
    except FetchError as exc:
        outcome = str(exc)
    seconds = time.monotonic() - started
    peak = status_kib("VmHWM")
print(json.dumps({"outcome": outcome, "seconds": seconds, "growth_kib": peak - before}))
"""


def gzip_bomb(decoded: int = 1 << 30) -> bytes:
    """``decoded`` bytes of zeros, gzipped: 16 concatenated members of 64 MiB (about 1 MB)."""
    member = gzip.compress(bytes(64 << 20), compresslevel=9)
    return member * (decoded // (64 << 20))


def test_gzip_bomb_on_a_redirect_fails_fast_without_memory_growth(server: ScriptedServer) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 2_000_000
    gzip_headers = {"Content-Encoding": "gzip"}
    server.route("/small", Reply(body=b"ok"))
    # The 302's body is never read; its target is the same bomb as a 200, refused at the byte cap.
    server.redirect("/bomb-302", "/bomb-200", body=bomb, headers=gzip_headers)
    server.route("/bomb-200", Reply(body=bomb, headers=gzip_headers))
    done = subprocess.run([sys.executable, "-c", BOMB_CLIENT, str(ROOT), server.url],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    print("gzip bomb:", report)  # figures for the note (pytest -s)
    assert "größer als 10485760 Bytes (entpackt)" in report["outcome"]
    assert report["growth_kib"] < 50 * 1024
    assert report["seconds"] < 10


# -- internal addresses ----------------------------------------------------------------

LOOPBACK_FORMS = ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "[::1]", "localhost"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_any_notation_is_refused(server: ScriptedServer, host: str) -> None:
    url = f"http://{host}:{server.httpd.server_port}/page"
    server.route("/page", Reply(body=b"page"))
    result = fetch(allowing(server), url)  # 127.0.0.1:port is allowed, but not under another name
    assert isinstance(result, AddressNotAllowed), result
    assert sum(server.hits.values()) == 0


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "localhost"])
def test_allow_listed_host_is_fetched_in_its_notation(server: ScriptedServer, host: str) -> None:
    server.route("/page", Reply(body=b"page"))
    settings = BASE.allowing(f"{host}:{server.httpd.server_port}")
    assert fetch(settings, f"http://{host}:{server.httpd.server_port}/page") == b"page"


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/",
                                 "http://0.0.0.0/", "http://224.0.0.1/", "http://100.64.0.1/"])
def test_private_and_special_addresses_are_refused_before_any_connection(url: str) -> None:
    result = fetch(BASE, url)
    assert isinstance(result, AddressNotAllowed), result


def fake_resolver(answers: list[str]):
    """A getaddrinfo that answers each call with the next address: a rebinding DNS server."""
    def resolve(host, port, family=0, kind=0, *rest):
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
    return resolve


def test_connection_goes_to_the_checked_address_no_dns_rebinding(server: ScriptedServer) -> None:
    server.route("/", Reply(body=b"internal"))
    guard = AddressGuard(resolver=fake_resolver(["93.184.216.34", "127.0.0.1"]))
    guard.check("rebind.example", server.httpd.server_port)  # first answer: public, passes
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", GuardedHTTPAdapter(guard))
    with pytest.raises(AddressRefused, match="127.0.0.1"):
        session.get(f"http://rebind.example:{server.httpd.server_port}/", timeout=5)
    assert sum(server.hits.values()) == 0


def test_a_name_is_connected_to_the_address_it_resolved_to(server: ScriptedServer) -> None:
    server.route("/", Reply(body=b"via name"))
    guard = AddressGuard(allowed_hosts=["shop.test"], resolver=fake_resolver(["127.0.0.1"]))
    session = requests.Session()
    session.mount("http://", GuardedHTTPAdapter(guard))
    response = session.get(f"http://shop.test:{server.httpd.server_port}/", timeout=5)
    assert response.content == b"via name"


# -- robots.txt as RFC 9309 reads it ------------------------------------------------------

ROBOTS = b"""User-agent: *
Disallow: /shop
Allow: /shop/partner
Disallow: /*.pdf$
Disallow: /search*q=
Allow: /folder/page
Disallow: /folder/
"""


@pytest.mark.parametrize("path, allowed", [
    ("/shop/cart", False),  # Disallow: /shop
    ("/shop/partner/otto", True),  # the longer Allow wins over the shorter Disallow
    ("/files/terms.pdf", False),  # * and $: any path ending in .pdf
    ("/files/terms.pdf.html", True),  # $ anchors the end
    ("/search?lang=de&q=otto", False),  # * inside the path
    ("/folder/page", True),  # Allow listed first or last: the longest match decides
    ("/folder/other", False),
    ("/other", True),
])
def test_robots_wildcards_and_longest_match(server: ScriptedServer, path: str, allowed: bool) -> None:
    server.route("/robots.txt", Reply(body=ROBOTS))
    server.route(path.split("?", 1)[0], Reply(body=b"page"))
    result = fetch(allowing(server), server.url + path)
    if allowed:
        assert result == b"page"
    else:
        assert isinstance(result, RobotsDisallowed), result
        assert server.hits[path.split("?", 1)[0]] == 0


def test_crawl_delay_is_capped(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 86400\n"))
    server.route("/page", Reply(body=b"page"))
    started = time.monotonic()
    with Fetcher(allowing(server, replace(BASE, max_crawl_delay=1))) as fetcher:
        for _ in range(2):
            fetcher.get(f"{server.url}/page")
    assert 1 <= time.monotonic() - started < 10  # one capped delay of 1 s, not a day


def test_robots_txt_counts_against_the_byte_cap(server: ScriptedServer) -> None:
    server.route("/robots.txt", Reply(body=gzip.compress(b"#" * 200_000), headers={"Content-Encoding": "gzip"}))
    server.route("/page", Reply(body=b"page"))
    result = fetch(allowing(server, replace(BASE, max_bytes=100_000)), f"{server.url}/page")
    assert isinstance(result, FetchError) and "robots.txt" in str(result) and "größer als" in str(result)
