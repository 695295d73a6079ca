"""POST one signed webhook, within hard limits, and say what happened (German, for the admin).

An endpoint URL is typed in by an admin and may point anywhere, so every
attempt goes through the scrapers' address guard (``scrapers/address_guard``:
no loopback, private, link-local, reserved ... address in any notation,
unless ``WEBHOOK_ALLOWED_HOSTS`` names the host; the socket goes to the
address just checked) and the same time budget (``scrapers/budget``: a
watchdog cuts the socket when the total time is up, so a server dripping its
answer cannot hold the delivery thread, and an answer not complete by then
is a timeout, whatever status line came first). Only ``http(s)``; redirects are
never followed (a 3xx is a failure, as the Standard Webhooks spec says), no
environment proxy, and the answer's body is never read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from scrapers.address_guard import AddressGuard, AddressRefused
from scrapers.budget import BudgetedHTTPAdapter, RequestBudget
from scrapers.fetch_errors import OFFLINE_HINT, describe_network_error

ALLOWED_SCHEMES = ("http", "https")
GONE = 410


@dataclass(frozen=True)
class SenderSettings:
    """Limits of one attempt, from the app's WEBHOOK_* configuration."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    user_agent: str = "Bonusvergleich-Webhooks/1.0"


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did: the answer's status (if any), how long it took, and the error."""

    status_code: Optional[int]
    duration_ms: int
    error: Optional[str] = None
    retry: bool = True  # False: trying again cannot help (refused destination, 410 Gone)
    retry_after: Optional[float] = None  # seconds the endpoint asked us to wait

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == GONE


class _NoRedirectSession(requests.Session):
    """A session that never follows, nor reads, a redirect (requests reads its body otherwise)."""

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


def destination_problem(url: str) -> Optional[str]:
    """Say (German) why ``url`` can never be a webhook destination, or None if it may be one."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return "Ungültige URL"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return "Nur http- und https-Adressen sind erlaubt"
    if not parts.hostname:
        return "Die URL nennt keinen Host"
    if any(ord(char) <= 32 or ord(char) == 127 for char in url):
        return "Die URL enthält Leer- oder Steuerzeichen"
    return None


def _retry_after(response: requests.Response) -> Optional[float]:
    """Seconds the endpoint asked us to wait (``Retry-After``), if it asked in a form we read."""
    try:
        return Retry().parse_retry_after(response.headers["Retry-After"])
    except (KeyError, InvalidHeader):
        return None


class WebhookSender:
    """Send signed webhook POSTs through the address guard; one per delivery thread."""

    def __init__(self, settings: SenderSettings) -> None:
        self.settings = settings
        self._guard = AddressGuard(settings.allowed_hosts)
        self._session = _NoRedirectSession()
        self._session.trust_env = False  # an environment proxy would be connected to instead
        self._session.headers["User-Agent"] = settings.user_agent
        adapter = BudgetedHTTPAdapter(self._guard, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __enter__(self) -> "WebhookSender":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> AttemptResult:
        """POST ``body`` to ``url`` once; never raises for anything the network or server does."""
        started = time.monotonic()

        def result(status: Optional[int], error: Optional[str], **more: Any) -> AttemptResult:
            return AttemptResult(status, int((time.monotonic() - started) * 1000), error, **more)

        problem = destination_problem(url)
        if problem is not None:
            return result(None, f"{problem}: keine Zustellung", retry=False)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        settings = self.settings
        try:
            with RequestBudget(settings.total_timeout) as budget:
                try:
                    response = self._session.post(
                        url, data=body, headers=dict(headers), stream=True, allow_redirects=False,
                        timeout=budget.timeouts(settings.connect_timeout, settings.read_timeout))
                except requests.RequestException as exc:
                    if budget.expired.is_set():
                        return result(None, self._over_budget(host))
                    return result(None, describe_network_error(exc, host, port).replace(f" – {OFFLINE_HINT}", ""))
                # The watchdog cuts a stalled answer by shutting the socket, and a header block cut
                # short reads like a whole one (http.client stops at EOF): a "200" that arrived
                # only because the budget ran out is a timeout, never a delivery.
                cut_short = budget.expired.is_set()
                response.close()  # the answer's body is not ours to read
            if cut_short:
                return result(None, self._over_budget(host))
        except AddressRefused as exc:
            return result(None, (f"Ziel verweigert: {exc.host} zeigt auf die interne Adresse {exc.address} "
                                 f"({exc.reason}); erlaubt nur, wenn WEBHOOK_ALLOWED_HOSTS den Host nennt"),
                          retry=False)
        status = response.status_code
        if 200 <= status < 300:
            return result(status, None)
        if 300 <= status < 400:
            return result(status, f"Weiterleitung (HTTP {status}) wird nicht gefolgt: bitte die URL anpassen")
        if status == GONE:
            return result(status, "HTTP 410 Gone: der Empfänger will keine Webhooks mehr, Endpunkt deaktiviert",
                          retry=False)
        return result(status, f"HTTP {status} statt 2xx", retry_after=_retry_after(response))

    def _over_budget(self, host: str) -> str:
        return (f"Zeitüberschreitung: {host} hat nicht innerhalb von "
                f"{self.settings.total_timeout:g} s vollständig geantwortet")
