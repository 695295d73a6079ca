"""Name look-ups that end at a deadline, so a slow resolver cannot stretch a fetch's time budget.

``getaddrinfo`` blocks and cannot be interrupted, and a socket timeout does
not cover it: a resolver that answers after 30 s held a scrape (three look-ups
per fetch) or the webhook delivery thread that long. So a look-up with a
timeout runs in a daemon thread of its own, and the caller stops waiting when
the time is up; the abandoned thread ends when the resolver answers. At most
``MAX_PENDING_LOOKUPS`` run at once in a process: a resolver that hangs for
every name must not pile up threads.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Optional

AddrInfo = tuple[int, int, int, str, tuple]
Resolver = Callable[..., list[AddrInfo]]

MAX_PENDING_LOOKUPS = 16
_pending = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)


class LookupTimeout(socket.gaierror):
    """The resolver did not answer in time (a ``gaierror``: callers treat it as a failed look-up)."""

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(socket.EAI_AGAIN, f"DNS-Auflösung von {host} dauerte länger als {seconds:.3g} s")
        self.host, self.seconds = host, seconds


def lookup(host: str, port: int, timeout: Optional[float], resolver: Optional[Resolver] = None) -> list[AddrInfo]:
    """``getaddrinfo(host, port)`` for TCP; with ``timeout``, raise ``LookupTimeout`` when it takes longer."""
    resolve = resolver or socket.getaddrinfo
    if timeout is None:
        return resolve(host, port, 0, socket.SOCK_STREAM)
    if not _pending.acquire(blocking=False):
        raise LookupTimeout(host, 0.0)  # every slot held by a look-up that has not come back
    outcome: dict[str, Any] = {}
    answered = threading.Event()

    def run() -> None:
        try:
            outcome["addresses"] = resolve(host, port, 0, socket.SOCK_STREAM)
        except BaseException as error:  # handed to the caller, if it still waits
            outcome["error"] = error
        finally:
            _pending.release()
            answered.set()

    threading.Thread(target=run, name="dns-lookup", daemon=True).start()
    if not answered.wait(max(timeout, 0.0)):
        raise LookupTimeout(host, timeout)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["addresses"]
