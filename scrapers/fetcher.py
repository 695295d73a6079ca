"""Fetch pages politely and within hard limits: the one HTTP client every scraper uses.

A scraper job runs unattended in a worker thread, so no server, however slow,
huge or hostile, may hang or swamp it, make it talk to internal hosts, or
notice us as more than a careful visitor. Hence, in one place, for every
request (robots.txt, retries and each redirect hop included):

* an address guard (``address_guard.py``): no connection to loopback, private,
  link-local, ... addresses unless the host is allow-listed, and the socket
  goes to the address that was checked;
* one time budget per ``get()`` for connect, headers, body, retries and
  redirects, enforced by a watchdog on the socket (``budget.py``);
* a byte cap on the decoded body; a redirect's body is never read;
* redirects followed here, hop by hop (at most ``max_redirects``), each hop
  checked like a first request;
* robots.txt (RFC 9309, ``robots.py``) checked before any request to a path;
* retries on 429/5xx with backoff, honouring ``Retry-After`` unless it is
  longer than we are willing to wait, each retry through the host's gate;
* per host at most ``host_concurrency`` requests in flight and request starts
  at least ``min_interval`` (or the site's ``Crawl-delay``, capped) apart.

The fetcher only does HTTP and returns bytes; parsing belongs to the scrapers.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Iterator, Mapping, Optional, Sequence, Union
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from scrapers.address_guard import AddressGuard, AddressRefused
from scrapers.budget import BudgetedHTTPAdapter, RequestBudget
from scrapers.fetch_errors import (
    AddressNotAllowed, FetchError, RobotsDisallowed, RobotsUnreachable, describe_network_error, is_transient,
)
from scrapers.fetch_settings import FetchSettings
from scrapers.host_gate import HostGate, HostGates, SlotBeyondDeadline
from scrapers.robots import RobotsRules

__all__ = ["Fetcher", "FetchError", "FetchSettings", "RobotsDisallowed", "RobotsUnreachable", "AddressNotAllowed"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 65536
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_BACKOFF = 120.0


@dataclass(frozen=True)
class _Target:
    """One URL about to be requested, with the parts every check needs."""

    url: str
    host: str
    port: int
    origin: str  # scheme://host:port, the key of politeness and robots.txt


def _backoff(attempt: int, factor: float) -> float:
    """urllib3's schedule: no pause before the first retry, then factor * 2^(n-1)."""
    return 0.0 if attempt <= 1 else min(factor * 2 ** (attempt - 1), MAX_BACKOFF)


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except InvalidHeader:
        return None  # a malformed Retry-After is ignored: plain backoff instead


class _HopSession(requests.Session):
    """A session that never follows a redirect, nor looks at one: the fetcher does that.

    Even with ``allow_redirects=False`` requests reads a redirect's whole body
    (decoded) to prepare ``Response.next``; a gzip bomb on a 302 would unpack
    into memory there.
    """

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


class Fetcher:
    """A polite, guarded HTTP client with a time budget and a byte cap; use as a context manager."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._guard = AddressGuard(settings.allowed_hosts)
        self._session = _HopSession()
        self._session.trust_env = False  # a proxy from the environment would bypass the guard
        self._session.headers["User-Agent"] = settings.user_agent
        # No urllib3 retries and no redirects: both happen in this class, through the checks.
        adapter = BudgetedHTTPAdapter(self._guard, max_retries=0, pool_maxsize=max(10, settings.host_concurrency))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._gates = HostGates(settings.host_concurrency, settings.min_interval)
        self._closed = threading.Event()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session; gets still waiting for a politeness slot fail with FetchError."""
        self._closed.set()
        self._session.close()

    def get(self, url: str, params: Optional[Mapping[str, Any]] = None) -> bytes:
        """Return the body of ``url``, following redirects; raise ``FetchError`` on any failure."""
        if params:
            try:
                url = requests.Request("GET", url, params=params).prepare().url or url
            except requests.RequestException as exc:
                raise FetchError(f"Ungültige URL {url!r}: {exc}") from exc
        return self._follow(url, check_robots=True)

    def get_many(self, urls: Sequence[str]) -> Iterator[tuple[str, Union[bytes, FetchError]]]:
        """Fetch ``urls`` concurrently; yield ``(url, body or FetchError)`` in completion order."""
        workers = self.settings.host_concurrency
        pending: dict[Future[Union[bytes, FetchError]], str] = {}
        queued = iter(urls)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetcher")
        try:
            while True:
                # Submit lazily: a few futures per worker, not the whole list at once.
                for url in queued:
                    pending[pool.submit(self._get_or_error, url)] = url
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            # Not waiting: a job stopped in the middle must not wait for the downloads in flight.
            pool.shutdown(wait=False, cancel_futures=True)

    def _get_or_error(self, url: str) -> Union[bytes, FetchError]:
        try:
            return self.get(url)
        except FetchError as exc:
            return exc

    # -- one fetch: hops, checks, attempts ---------------------------------------

    def _follow(self, url: str, check_robots: bool, cap: Optional[float] = None) -> bytes:
        """Fetch ``url`` hop by hop within one budget; each hop passes guard, robots and gate."""
        start_url = url
        budget: Optional[RequestBudget] = None
        with ExitStack() as stack:
            for hop in range(self.settings.max_redirects + 1):
                # The look-up counts against the budget (before the first request: all of it, up to the cap).
                lookup_seconds = budget.remaining() if budget else self.settings.total_timeout
                if cap is not None:
                    lookup_seconds = min(lookup_seconds, cap - time.monotonic())
                target = self._target(url, lookup_seconds)
                if check_robots:
                    self._check_robots(target, budget.deadline if budget else cap)
                gate = self._gates[target.origin]
                with gate.semaphore:
                    self._wait_for_slot(gate, target, budget)
                    if budget is None:  # it starts with the first request, not while waiting for a slot
                        budget = stack.enter_context(RequestBudget(self.settings.total_timeout, cap))
                    response = self._send(target, gate, budget)
                    try:
                        if response.status_code not in REDIRECT_STATUSES:
                            return self._final_body(response, target, budget)
                        url = self._redirect_target(response, target)
                    finally:
                        budget.detach()
                        response.close()  # unread (a redirect's body): the connection is dropped
                log.debug("redirect %d from %s to %s", hop + 1, target.url, url)
        raise FetchError(f"Mehr als {self.settings.max_redirects} Weiterleitungen ab {start_url}: abgebrochen")

    def _target(self, url: str, lookup_timeout: float) -> _Target:
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchError(f"Ungültige URL {url!r}: nur http(s) mit Hostname wird abgerufen")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:  # "http://[::1", a port out of range
            raise FetchError(f"Ungültige URL {url!r}: {exc}") from exc
        host = parts.hostname
        bracketed = f"[{host}]" if ":" in host else host  # IPv6 literal
        target = _Target(parts._replace(fragment="").geturl(), host, port, f"{parts.scheme}://{bracketed}:{port}")
        try:
            self._guard.check(host, port, max(lookup_timeout, 0.001))
        except AddressRefused as exc:
            raise AddressNotAllowed(f"{exc} (URL {target.url})") from exc
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(describe_network_error(exc, host, port), transient=True) from exc
        return target

    def _redirect_target(self, response: requests.Response, target: _Target) -> str:
        location = response.headers.get("Location", "").strip()
        if not location:
            raise FetchError(f"HTTP {response.status_code} ohne Weiterleitungsziel für {target.url}",
                             status=response.status_code)
        try:
            return urljoin(target.url, location)
        except ValueError as exc:  # "http://[::1": not even a URL
            raise FetchError(f"Ungültige URL {location[:200]!r} als Weiterleitungsziel von {target.url}: {exc}") \
                from exc

    def _wait_for_slot(self, gate: HostGate, target: _Target, budget: Optional[RequestBudget],
                       pause: float = 0.0) -> None:
        """Wait for the host's next start time, at least ``pause`` from now, within the budget."""
        try:
            wait_for = gate.reserve(time.monotonic() + pause, budget.deadline if budget else None)
        except SlotBeyondDeadline as exc:
            raise FetchError(
                f"Zeitüberschreitung bei {target.host}: das Zeitbudget von {self.settings.total_timeout:g} s "
                f"reicht nicht für eine weitere Anfrage nach {exc.wait:.3g} s Wartezeit", transient=True,
            ) from exc
        start = time.monotonic() + wait_for
        # A timed wait may end a fraction of a millisecond early: wait again until the slot is due.
        while (remaining := start - time.monotonic()) > 0:
            if self._closed.wait(remaining):
                raise FetchError(f"Abruf von {target.url} abgebrochen: der Fetcher wurde geschlossen")
        if self._closed.is_set():
            raise FetchError(f"Abruf von {target.url} abgebrochen: der Fetcher wurde geschlossen")

    def _over_budget(self, target: _Target) -> FetchError:
        return FetchError(
            f"Zeitüberschreitung bei {target.host}: Abruf von {target.url} dauerte länger als das "
            f"Zeitbudget von {self.settings.total_timeout:g} s", transient=True,
        )

    def _send(self, target: _Target, gate: HostGate, budget: RequestBudget) -> requests.Response:
        """Send GET until an answer that is not retried; retries wait for the host's gate."""
        settings = self.settings
        attempt, pause = 0, 0.0
        while True:
            if attempt:
                self._wait_for_slot(gate, target, budget, pause)
            log.debug("GET %s", target.url)
            gate.started(time.monotonic())  # the gap to the next request counts from the real start
            try:
                response = self._session.get(
                    target.url, stream=True, allow_redirects=False,
                    timeout=budget.timeouts(settings.connect_timeout, settings.read_timeout),
                )
            except AddressRefused as exc:  # checked again at connect: the name now points inside
                raise AddressNotAllowed(f"{exc} (URL {target.url})") from exc
            except requests.RequestException as exc:
                budget.detach()
                if budget.expired.is_set():
                    raise self._over_budget(target) from exc
                if attempt < settings.retries and is_transient(exc):
                    attempt, pause = attempt + 1, _backoff(attempt + 1, settings.backoff_factor)
                    continue
                raise FetchError(describe_network_error(exc, target.host, target.port), transient=True) from exc
            status = response.status_code
            if status not in RETRY_STATUSES:
                return response
            response.close()  # never read an error body we are going to retry anyway
            budget.detach()
            retry_after = _retry_after(response)
            if attempt >= settings.retries:
                suffix = f", auch nach {attempt} Wiederholungen" if attempt else ""
                raise FetchError(f"HTTP {status} für {target.url}{suffix}", status=status)
            if retry_after is not None and retry_after > settings.max_retry_after:
                raise FetchError(
                    f"HTTP {status} für {target.url} mit Retry-After: {response.headers.get('Retry-After')}, "
                    f"länger als die erlaubten {settings.max_retry_after:g} s Wartezeit", status=status,
                )
            attempt += 1
            pause = retry_after if retry_after is not None else _backoff(attempt, settings.backoff_factor)

    def _final_body(self, response: requests.Response, target: _Target, budget: RequestBudget) -> bytes:
        if not 200 <= response.status_code < 300:
            raise FetchError(f"HTTP {response.status_code} für {target.url}", status=response.status_code)
        body = self._read_body(response, target, budget)
        budget.detach()  # before the connection is back in the pool for another thread
        response.raw.release_conn()  # read to the end: the connection may serve the next request
        return body

    def _read_body(self, response: requests.Response, target: _Target, budget: RequestBudget) -> bytes:
        """Read the decoded body up to ``max_bytes``, cut off by the budget's watchdog."""
        max_bytes = self.settings.max_bytes
        too_big = f"Antwort von {target.url} ist größer als {max_bytes} Bytes"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{too_big} (Content-Length {declared})")
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # read1 decodes at most CHUNK_SIZE bytes at a time (urllib3 >= 2.6), so a
                # gzip bomb is counted, and refused, as it unpacks.
                chunk = response.raw.read1(CHUNK_SIZE, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{too_big} (entpackt)" if "Content-Encoding" in response.headers
                                     else too_big)
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if budget.expired.is_set():
                raise self._over_budget(target) from exc
            raise FetchError(describe_network_error(exc, target.host, target.port), transient=True) from exc
        if budget.expired.is_set():
            raise self._over_budget(target)  # the cut-off looked like a normal end of the body
        return b"".join(chunks)

    # -- robots.txt --------------------------------------------------------------------

    def _check_robots(self, target: _Target, cap: Optional[float]) -> None:
        rules = self._robots_rules(target, cap)
        if rules.unreachable is not None:
            raise RobotsUnreachable(
                f"robots.txt von {target.origin} nicht erreichbar ({rules.unreachable}): "
                f"{target.url} wird nicht abgerufen"
            )
        if not rules.allows(target.url, self.settings.user_agent):
            raise RobotsDisallowed(f"robots.txt von {target.origin} verbietet den Abruf von {target.url}")

    def _robots_rules(self, target: _Target, cap: Optional[float]) -> RobotsRules:
        """Read robots.txt once per origin; later callers wait for the first."""
        gate = self._gates[target.origin]
        with gate.robots_lock:
            if gate.robots is None:
                rules = self._load_robots(target, gate, cap)
                if rules is None:  # the caller's budget ran out: decide nothing for the others
                    raise self._over_budget(target)
                gate.robots = rules
            return gate.robots  # type: ignore[return-value]

    def _load_robots(self, target: _Target, gate: HostGate, cap: Optional[float]) -> Optional[RobotsRules]:
        robots_url = f"{target.origin}/robots.txt"
        try:
            body = self._follow(robots_url, check_robots=False, cap=cap)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                log.info("no usable robots.txt at %s (HTTP %s): everything allowed", target.origin, exc.status)
                return RobotsRules()
            if cap is not None and time.monotonic() >= cap:
                return None
            log.debug("robots.txt at %s unreachable: %s", target.origin, exc)  # the job reports it
            return RobotsRules(unreachable=str(exc))
        rules = RobotsRules.parse(body)
        delay = rules.crawl_delay(self.settings.user_agent)
        if delay is not None:
            capped = min(delay, self.settings.max_crawl_delay)
            log.info("robots.txt at %s asks for a Crawl-delay of %g s (using %g s)", target.origin, delay, capped)
            gate.widen_interval(capped)
        return rules
