"""Refuse outbound connections to internal addresses (SSRF guard); no Flask here.

Scrapers fetch URLs that come from outside (sitemap entries, redirect
targets), and a later feature delivers webhooks to URLs an admin types in.
Without a guard such a URL can make the server talk to itself or to its
neighbours: ``http://127.0.0.1:5432/``, ``http://169.254.169.254/`` (cloud
metadata), a router on ``192.168.0.1``. This module

* reads a host in every notation a resolver accepts: ``2130706433``,
  ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``[::1]``, ``[::ffff:127.0.0.1]``;
  resolves names with ``getaddrinfo`` and refuses the host when *any* of its
  addresses is not public (loopback, private, link-local, multicast, reserved,
  unspecified, or otherwise not globally routable, also inside IPv4-mapped,
  6to4, Teredo and NAT64 IPv6 addresses);
* connects itself (``AddressGuard.connect``) to an address it has just checked,
  so a name cannot resolve to a public address for the check and to an
  internal one for the connection (DNS rebinding);
* lets through the hosts of an explicit allow-list (``host`` or ``host:port``).

``GuardedHTTPAdapter`` mounts the guard on a ``requests.Session``: every new
connection goes through ``AddressGuard.connect``, while TLS still sends SNI
and verifies the certificate for the host name of the URL, and the Host header
names it too. Use it with ``session.trust_env = False`` (an environment proxy
would otherwise be the address connected to) and follow redirects yourself, so
each target is checked before anything is sent to it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any, Iterable, Optional, Union
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from scrapers.dns_lookup import AddrInfo, Resolver, lookup

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class AddressRefused(Exception):
    """The host is, or resolves to, an address we must not connect to."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(
            f"Abruf verweigert: {host} zeigt auf die interne Adresse {address} ({reason}); "
            "nur öffentliche Adressen und ausdrücklich erlaubte Hosts werden abgerufen"
        )
        self.host, self.address, self.reason = host, address, reason


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if len(part) > 1 and part[0] == "0" else int(part)


def parse_ip_literal(host: str) -> Optional[IPAddress]:
    """Return the address a host string denotes by itself, in any notation; None for a name.

    Besides the standard forms this reads what ``inet_aton`` reads: one to four
    parts, each decimal, octal (leading 0) or hexadecimal (0x), the last part
    filling the remaining bytes (``127.1``, ``2130706433``, ``0x7f.1``).
    """
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(part) for part in parts):
        return None
    numbers = [_part_value(part) for part in parts]
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = 0
    for number in leading:
        value = value << 8 | number
    return ipaddress.IPv4Address(value << 8 * (5 - len(numbers)) | last)


def refusal_reason(address: IPAddress) -> Optional[str]:
    """Say why ``address`` is not public (German), or None when it may be connected to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            if inner is not None and refusal_reason(inner):
                return f"eingebettet {inner}: {refusal_reason(inner)}"
    checks = (
        ("unspezifiziert", address.is_unspecified),
        ("Loopback", address.is_loopback),
        ("Link-Local", address.is_link_local),
        ("Multicast", address.is_multicast),
        ("privates Netz", address.is_private),
        ("reserviert", address.is_reserved),
        ("nicht öffentlich routbar", not address.is_global),
    )
    return next((reason for reason, applies in checks if applies), None)


def _normalise_allowed(entry: str) -> tuple[str, Optional[int]]:
    parts = urlsplit("//" + entry.strip().lower())
    if not parts.hostname:
        raise ValueError(f"not a host or host:port: {entry!r}")
    return parts.hostname, parts.port


class AddressGuard:
    """Check hosts and open connections only to public addresses or allow-listed hosts."""

    def __init__(self, allowed_hosts: Iterable[str] = (), resolver: Optional[Resolver] = None) -> None:
        """``allowed_hosts``: ``"name"`` (any port) or ``"name:port"``; ``resolver``: ``getaddrinfo``."""
        self._allowed = {_normalise_allowed(entry) for entry in allowed_hosts if entry.strip()}
        self._resolver = resolver

    def is_allowed(self, host: str, port: int) -> bool:
        """Tell whether ``host:port`` is on the allow-list (compared as written, case-insensitive)."""
        name = host.strip("[]").lower()
        return (name, None) in self._allowed or (name, port) in self._allowed

    def resolve(self, host: str, port: int, timeout: Optional[float] = None) -> list[AddrInfo]:
        """Return the addresses to connect to for ``host:port``, every one of them checked.

        Raises ``AddressRefused`` when any address is internal (unless the host
        is allow-listed) and ``socket.gaierror`` when the name does not resolve
        (``LookupTimeout`` when it does not within ``timeout`` seconds).
        """
        literal = parse_ip_literal(host)
        if literal is not None:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            sockaddr = (str(literal), port, 0, 0) if literal.version == 6 else (str(literal), port)
            infos: list[AddrInfo] = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
        else:
            infos = lookup(host, port, timeout, self._resolver)
        if self.is_allowed(host, port):
            return infos
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            reason = refusal_reason(address)
            if reason is not None:
                raise AddressRefused(host, str(address), reason)
        return infos

    def check(self, host: str, port: int, timeout: Optional[float] = None) -> None:
        """Raise ``AddressRefused`` (or ``socket.gaierror``) unless ``host:port`` may be fetched."""
        self.resolve(host, port, timeout)

    def connect(
        self,
        host: str,
        port: int,
        timeout: Optional[float],
        source_address: Optional[tuple[str, int]] = None,
        socket_options: Optional[Iterable[tuple[int, int, Any]]] = None,
    ) -> socket.socket:
        """Resolve, check and connect in one step: the socket goes to an address just checked.

        The look-up counts against ``timeout`` too: a slow resolver cannot stretch a connect.
        """
        last_error: Optional[OSError] = None
        for family, kind, proto, _, sockaddr in self.resolve(host, port, timeout):
            sock = socket.socket(family, kind, proto)
            try:
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last_error = exc
        raise last_error or OSError(f"no address for {host}")


class _GuardedConnectionMixin:
    """Open the TCP connection through ``guard``; everything above (TLS, HTTP) stays urllib3's."""

    guard: AddressGuard  # set on a subclass made per adapter

    def _new_conn(self) -> socket.socket:
        try:
            return self.guard.connect(
                self._dns_host, self.port, self.timeout, self.source_address, self.socket_options
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    """A plain HTTP connection opened through the guard."""


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    """An HTTPS connection opened through the guard; SNI and certificate check use the URL's host."""


class GuardedHTTPAdapter(HTTPAdapter):
    """A requests adapter whose every connection is opened by an ``AddressGuard``.

    Subclasses may set ``http_connection_cls``/``https_connection_cls`` to
    subclasses of the guarded connections to add behaviour of their own.
    """

    http_connection_cls: type[HTTPConnection] = GuardedHTTPConnection
    https_connection_cls: type[HTTPSConnection] = GuardedHTTPSConnection

    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        self.guard = guard  # init_poolmanager, called by HTTPAdapter.__init__, needs it
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        bound = {"guard": self.guard}
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {
                "ConnectionCls": type("BoundHTTPConnection", (self.http_connection_cls,), bound)}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {
                "ConnectionCls": type("BoundHTTPSConnection", (self.https_connection_cls,), bound)}),
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy the guard would check the proxy's address, not the target's.
        raise ValueError("GuardedHTTPAdapter does not connect through proxies")
