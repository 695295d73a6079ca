"""Fetch failures with messages an admin understands (German), free of urllib3 internals.

A failed request surfaces in a job's error and messages, which an admin reads
on ``/admin``. requests/urllib3 describe failures as nested exception reprs
(``HTTPConnectionPool(host=..., port=...): Max retries exceeded ... (Caused by
NewConnectionError('<urllib3.connection.HTTPConnection object at 0x...>: ...'))``).
``describe_network_error`` walks that chain and names what happened, which
host it happened with and, when the network itself seems to be missing, that
offline mode exists.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Iterator, Optional

from scrapers.dns_lookup import LookupTimeout
from scrapers.errors import ScrapeError

OFFLINE_HINT = "ohne Internetzugang: Offline-Modus mit SCRAPER_SOURCES=offline"


class FetchError(ScrapeError):
    """A URL could not be fetched; the message names the host or URL and the cause.

    ``status`` is the HTTP status when the server answered with an error.
    Every fetch failure is ``expected``: logged as one line, without a traceback.
    """

    expected = True

    def __init__(self, message: str, *, status: Optional[int] = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient  # the network or the host had a bad moment (no answer, a timeout)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """Worth another attempt later: no answer or a timeout, a 429 or a 5xx; never a refusal by design."""
        if self.status is not None:
            return self.status == 429 or self.status >= 500
        return self.transient


class RobotsDisallowed(FetchError):
    """robots.txt forbids the URL; no request was sent."""


class RobotsUnreachable(FetchError):
    """robots.txt could not be read (network error or 5xx): RFC 9309 says stay away, for now."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return True


class AddressNotAllowed(FetchError):
    """The URL's host is or resolves to an internal address; no request was sent."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and everything it wraps: causes, contexts, urllib3 reasons, requests args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        wrapped = [getattr(current, "reason", None), current.__cause__, current.__context__]
        wrapped += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))


def _find(exc: BaseException, kind: type) -> Optional[BaseException]:
    return next((item for item in _chain(exc) if isinstance(item, kind)), None)


def _names(exc: BaseException) -> set[str]:
    return {type(item).__name__ for item in _chain(exc)}


def _with_hint(message: str) -> str:
    return f"{message} – {OFFLINE_HINT}"


def describe_network_error(exc: BaseException, host: str, port: Optional[int] = None) -> str:
    """Turn a requests/urllib3/socket failure into one German sentence naming ``host``."""
    where = f"{host}:{port}" if port else host
    names = _names(exc)
    tls = _find(exc, ssl.SSLError)
    if tls is not None or "SSLError" in names:
        detail = getattr(tls, "verify_message", None) or getattr(tls, "reason", None)
        return f"TLS-Fehler bei {host}" + (f": {detail}" if detail else "")
    slow_lookup = _find(exc, LookupTimeout)
    if slow_lookup is not None:
        return _with_hint(f"Host nicht erreichbar (DNS): {slow_lookup.args[1]}")
    if _find(exc, socket.gaierror) is not None or "NameResolutionError" in names:
        return _with_hint(f"Host nicht erreichbar (DNS): {host} lässt sich nicht auflösen")
    if _find(exc, ConnectionRefusedError) is not None:
        return f"Verbindung abgelehnt: {where} nimmt keine Verbindungen an"
    unreachable = next((item for item in _chain(exc) if isinstance(item, OSError)
                        and item.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)), None)
    if unreachable is not None:
        return _with_hint(f"Host nicht erreichbar (Netzwerk): keine Route zu {where}")
    if "ConnectTimeoutError" in names or "ConnectTimeout" in names:
        return _with_hint(f"Zeitüberschreitung beim Verbindungsaufbau zu {where}")
    if "ReadTimeoutError" in names or "ReadTimeout" in names or _find(exc, socket.timeout):
        return f"Zeitüberschreitung: {host} hat zu lange nicht geantwortet"
    if _find(exc, ConnectionResetError) is not None or "RemoteDisconnected" in names \
            or "ProtocolError" in names or "ChunkedEncodingError" in names:
        return f"Verbindung zu {where} wurde unterbrochen"
    return f"Netzwerkfehler beim Abruf von {where}"


def is_transient(exc: BaseException) -> bool:
    """Tell whether another attempt may succeed: a dropped connection, not DNS, refusal or TLS."""
    names = _names(exc)
    if "SSLError" in names or "NameResolutionError" in names or _find(exc, ConnectionRefusedError):
        return False
    return bool(_find(exc, ConnectionResetError)) or "RemoteDisconnected" in names or "ProtocolError" in names
