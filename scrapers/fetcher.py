"""Fetch pages politely and within hard limits: the one HTTP client every scraper uses.

A scraper job runs unattended in a worker thread, so a single slow, huge or
hostile response must not hang or swamp it, and the sites we compare must not
notice us as more than a careful visitor. Hence, in one place:

* a total time budget per ``get()`` that covers retries, ``Retry-After`` waits
  and the body; a watchdog cuts off servers that trickle bytes to dodge the
  per-read timeout;
* a byte cap on every body;
* retries on 429/5xx with backoff, honouring ``Retry-After`` unless it is
  longer than we are willing to wait;
* robots.txt (RFC 9309) checked before any request to a path;
* per host at most ``host_concurrency`` requests in flight and request starts
  at least ``min_interval`` (or the site's ``Crawl-delay``) apart.

The fetcher only does HTTP and returns bytes; parsing belongs to the scrapers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.robotparser
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Iterator, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

from scrapers.errors import ScrapeError

log = logging.getLogger(__name__)

CHUNK_SIZE = 65536
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_CONFIG_KEYS = {
    "user_agent": "SCRAPER_USER_AGENT",
    "connect_timeout": "SCRAPER_CONNECT_TIMEOUT",
    "read_timeout": "SCRAPER_TIMEOUT",
    "total_timeout": "SCRAPER_TOTAL_TIMEOUT",
    "max_bytes": "SCRAPER_MAX_BYTES",
    "retries": "SCRAPER_RETRIES",
    "max_retry_after": "SCRAPER_MAX_RETRY_AFTER",
    "host_concurrency": "SCRAPER_HOST_CONCURRENCY",
    "min_interval": "SCRAPER_MIN_INTERVAL",
}


@dataclass(frozen=True)
class FetchSettings:
    """Limits and manners for one ``Fetcher``."""

    user_agent: str = "Bonusvergleich-Scraper/0.1 (compares loyalty programme earn rates)"
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  # budget for one get(), retries and body included
    max_bytes: int = 10 * 1024 * 1024
    retries: int = 3
    backoff_factor: float = 0.5
    max_retry_after: float = 30.0  # a longer Retry-After fails the request at once instead of sleeping
    host_concurrency: int = 2  # max requests in flight per host
    min_interval: float = 0.5  # min seconds between request starts to one host

    def __post_init__(self) -> None:
        if self.host_concurrency < 1:
            raise ValueError("host_concurrency must be at least 1")
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("timeouts must be positive")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FetchSettings":
        """Build settings from ``SCRAPER_*`` config keys; missing keys keep the defaults."""
        values: dict[str, Any] = {}
        for setting in dataclasses.fields(cls):
            key = _CONFIG_KEYS.get(setting.name)
            if key is not None and config.get(key) is not None:
                # Values may come from the environment as strings: cast to the default's type.
                values[setting.name] = type(setting.default)(config[key])
        return cls(**values)


class FetchError(ScrapeError):
    """A URL could not be fetched; the message names the URL and the cause."""


class RobotsDisallowed(FetchError):
    """robots.txt forbids the URL (or could not be read); no request was sent."""


class _RetryAbort(ResponseError):
    """Stop retrying; urllib3 raises it as ``MaxRetryError``, requests as ``RetryError``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The Retry object lives on the shared adapter, but urllib3 retries synchronously
# in the calling thread, so each get() tells it its own deadline here.
_budget = threading.local()


class _PoliteRetry(Retry):
    """Retry transient failures, but never wait too long or past the request's deadline."""

    def __init__(self, *args: Any, max_retry_after: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after

    def new(self, **kw: Any) -> "_PoliteRetry":
        kw.setdefault("max_retry_after", self.max_retry_after)
        return super().new(**kw)

    def get_retry_after(self, response: BaseHTTPResponse) -> Optional[float]:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None  # a malformed Retry-After is ignored: plain backoff instead

    def increment(
        self,
        method: Optional[str] = None,
        url: Optional[str] = None,
        response: Optional[BaseHTTPResponse] = None,
        error: Optional[Exception] = None,
        _pool: Optional[ConnectionPool] = None,
        _stacktrace: Optional[TracebackType] = None,
    ) -> "_PoliteRetry":
        retry_after = self.get_retry_after(response) if response is not None else None
        if response is not None and retry_after is not None and retry_after > self.max_retry_after:
            raise MaxRetryError(
                _pool,
                url,
                _RetryAbort(
                    f"HTTP {response.status} mit Retry-After: {response.headers.get('Retry-After')}, "
                    f"länger als die erlaubten {self.max_retry_after:g} s Wartezeit"
                ),
            )
        try:
            new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError as exc:
            if response is None:
                raise
            reason = _RetryAbort(f"HTTP {response.status}, auch nach {len(self.history)} Wiederholungen")
            raise MaxRetryError(_pool, url, reason) from exc
        deadline: Optional[float] = getattr(_budget, "deadline", None)
        if deadline is not None:
            # Mirror Retry.sleep(): a Retry-After wins over the backoff.
            if self.respect_retry_after_header and retry_after:
                pause = retry_after
            else:
                pause = new_retry.get_backoff_time()
            now = time.monotonic()
            if now + pause >= deadline:
                if now >= deadline:
                    message = f"das Zeitbudget von {_budget.total:g} s ist aufgebraucht"
                else:
                    message = (
                        f"das Zeitbudget von {_budget.total:g} s reicht nicht für eine weitere "
                        f"Wiederholung nach {pause:g} s Wartezeit"
                    )
                cause = f" (letzter Fehler: {error})" if error is not None else ""
                raise MaxRetryError(_pool, url, _RetryAbort(message + cause))
        return new_retry


class _DeadlineTimeout(Timeout):
    """Cap connect and read timeouts by an absolute deadline, re-read on every retry attempt.

    A plain ``(connect, read)`` tuple is fixed when get() starts, so each retry
    would get the full read timeout again and overrun the budget.
    """

    def __init__(self, connect: float, read: float, deadline: float) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline = deadline

    def clone(self) -> "_DeadlineTimeout":
        return _DeadlineTimeout(self._connect, self._read, self.deadline)

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def connect_timeout(self) -> float:
        # 0 would switch the socket to non-blocking mode; a tiny timeout fails cleanly.
        return max(min(self._connect, self._remaining()), 0.001)

    @property
    def read_timeout(self) -> float:
        # urllib3 raises ReadTimeoutError itself for 0, before waiting.
        return max(min(self._read, self._remaining()), 0.0)


@dataclass
class _RobotsRules:
    parser: Optional[urllib.robotparser.RobotFileParser] = None
    refusal: Optional[str] = None  # set when robots.txt could not be read: refuse everything


@dataclass
class _HostGate:
    """Per-host politeness state: how many requests may run and when the next may start."""

    semaphore: threading.Semaphore
    interval: float
    next_start: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    robots_lock: threading.Lock = field(default_factory=threading.Lock)
    robots: Optional[_RobotsRules] = None


class Fetcher:
    """A polite HTTP client with a time budget, a byte cap and robots.txt; use as a context manager."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._session.headers["User-Agent"] = settings.user_agent
        retry = _PoliteRetry(
            total=settings.retries,
            backoff_factor=settings.backoff_factor,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            max_retry_after=settings.max_retry_after,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(10, settings.host_concurrency))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._hosts: dict[str, _HostGate] = {}
        self._hosts_lock = threading.Lock()
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
        """Return the body of ``url`` after checking robots.txt; raise ``FetchError`` on any failure."""
        if params:
            try:
                url = requests.Request("GET", url, params=params).prepare().url or url
            except requests.RequestException as exc:
                raise FetchError(f"Ungültige URL {url!r}: {exc}") from exc
        origin = self._origin(url)
        gate = self._gate(origin)
        rules = self._robots_rules(origin, gate)
        if rules.refusal is not None:
            raise RobotsDisallowed(f"{url} wird nicht abgerufen: {rules.refusal}")
        if rules.parser is not None and not rules.parser.can_fetch(self.settings.user_agent, url):
            raise RobotsDisallowed(f"robots.txt von {origin} verbietet den Abruf von {url}")
        return self._fetch(url, gate)

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
            pool.shutdown(wait=True, cancel_futures=True)

    def _get_or_error(self, url: str) -> Union[bytes, FetchError]:
        try:
            return self.get(url)
        except FetchError as exc:
            return exc

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"Ungültige URL {url!r}: nur http(s) mit Hostname wird abgerufen")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(f"Ungültige URL {url!r}: {exc}") from exc
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 literal
        return f"{parts.scheme}://{host}:{port}"

    def _gate(self, origin: str) -> _HostGate:
        with self._hosts_lock:
            gate = self._hosts.get(origin)
            if gate is None:
                gate = _HostGate(threading.Semaphore(self.settings.host_concurrency), self.settings.min_interval)
                self._hosts[origin] = gate
            return gate

    def _robots_rules(self, origin: str, gate: _HostGate) -> _RobotsRules:
        """Read robots.txt once per origin (RFC 9309); later callers wait for the first."""
        with gate.robots_lock:
            if gate.robots is None:
                gate.robots = self._load_robots(origin, gate)
            return gate.robots

    def _load_robots(self, origin: str, gate: _HostGate) -> _RobotsRules:
        robots_url = f"{origin}/robots.txt"
        try:
            body = self._fetch(robots_url, gate)
        except FetchError as exc:
            status = self._status_of(exc)
            if status is not None and 400 <= status < 500:
                log.info("no usable robots.txt at %s (HTTP %s): everything allowed", origin, status)
                return _RobotsRules()
            log.warning("robots.txt at %s unreachable, refusing the host: %s", origin, exc)
            return _RobotsRules(refusal=f"robots.txt von {origin} ist nicht abrufbar ({exc})")
        parser = urllib.robotparser.RobotFileParser(robots_url)
        parser.parse(body.decode("utf-8", errors="replace").splitlines())
        delay = parser.crawl_delay(self.settings.user_agent)
        if delay is not None and float(delay) > gate.interval:
            log.info("robots.txt at %s asks for a Crawl-delay of %s s", origin, delay)
            with gate.lock:
                # The robots.txt fetch already booked the next slot with the old interval.
                gate.next_start += float(delay) - gate.interval
                gate.interval = float(delay)
        return _RobotsRules(parser=parser)

    @staticmethod
    def _status_of(exc: FetchError) -> Optional[int]:
        cause = exc.__cause__
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            return cause.response.status_code
        return None

    def _wait_for_slot(self, gate: _HostGate, url: str) -> None:
        """Reserve the next start time for this host under the lock, then sleep outside it."""
        with gate.lock:
            now = time.monotonic()
            start = max(now, gate.next_start)
            gate.next_start = start + gate.interval
        if start > now and self._closed.wait(start - now):
            raise FetchError(f"Abruf von {url} abgebrochen: der Fetcher wurde geschlossen")

    def _fetch(self, url: str, gate: _HostGate) -> bytes:
        """Send one GET through the host gate, within the total budget; return the body."""
        with gate.semaphore:
            self._wait_for_slot(gate, url)
            if self._closed.is_set():
                raise FetchError(f"Abruf von {url} abgebrochen: der Fetcher wurde geschlossen")
            settings = self.settings
            deadline = time.monotonic() + settings.total_timeout
            timeout = _DeadlineTimeout(settings.connect_timeout, settings.read_timeout, deadline)
            _budget.deadline, _budget.total = deadline, settings.total_timeout
            log.debug("GET %s", url)
            try:
                response = self._session.get(url, timeout=timeout, stream=True)
            except requests.exceptions.RetryError as exc:
                reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
                detail = reason.message if isinstance(reason, _RetryAbort) else str(exc)
                raise FetchError(f"Abruf von {url} fehlgeschlagen: {detail}") from exc
            except requests.Timeout as exc:
                raise FetchError(f"Zeitüberschreitung beim Abruf von {url}: {exc}") from exc
            except requests.RequestException as exc:
                raise FetchError(f"Abruf von {url} fehlgeschlagen: {exc}") from exc
            finally:
                _budget.deadline = None
            with response:
                try:
                    response.raise_for_status()
                except requests.HTTPError as exc:
                    raise FetchError(f"HTTP {response.status_code} für {url}") from exc
                return self._read_body(response, url, deadline)

    def _read_body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        max_bytes = self.settings.max_bytes
        too_big = f"Antwort von {url} ist größer als {max_bytes} Bytes"
        over_budget = f"Abruf von {url} dauerte länger als das Zeitbudget von {self.settings.total_timeout:g} s"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{too_big} (Content-Length {declared})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(over_budget)
        expired = threading.Event()

        def cut_off() -> None:
            # The read timeout applies per recv(), so a server trickling a byte
            # every few seconds never trips it; shutting the socket down ends the read.
            expired.set()
            try:
                response.raw.shutdown()
            except (ValueError, RuntimeError, OSError):
                pass  # already closed or released: nothing left to interrupt

        watchdog = threading.Timer(remaining, cut_off)
        watchdog.daemon = True
        watchdog.start()
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = response.raw.read1(CHUNK_SIZE, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(too_big)
                chunks.append(chunk)
                if time.monotonic() >= deadline:
                    raise FetchError(over_budget)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if expired.is_set():
                raise FetchError(over_budget) from exc
            raise FetchError(f"Abruf von {url} abgebrochen beim Lesen der Antwort: {exc}") from exc
        finally:
            watchdog.cancel()
        if expired.is_set():
            raise FetchError(over_budget)  # the cut-off looked like a normal end of the body
        return b"".join(chunks)
