"""Login limits that slow guessing down without letting anyone lock the admin out.

- Per client address (``LOGIN_RATE_LIMIT_PER_IP``) and per user name *and*
  address (``LOGIN_RATE_LIMIT_PER_USER_AND_IP``): over the limit, ``429``.
  Only the address that guessed is refused, so failures from one address
  never refuse the right password from another.
- Per user name across all addresses only a delay: after
  ``LOGIN_SLOWDOWN_AFTER`` failures within ``SLOWDOWN_WINDOW_MINUTES`` every
  attempt for that name waits 0.25 s, doubling with each further failure up
  to ``LOGIN_SLOWDOWN_MAX_SECONDS``, and is then answered as usual. At most
  ``LOGIN_SLOWDOWN_SLOTS`` requests per process wait at once; further ones
  are not delayed, so the delay can never tie up the server's threads.

Counts live in Flask-Limiter's storage (memory, or ``RATELIMIT_STORAGE_URI``
shared by all processes).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItemPerMinute

limiter = Limiter(get_remote_address)

SLOWDOWN_WINDOW_MINUTES = 15
FIRST_DELAY_SECONDS = 0.25
_FAILURES = RateLimitItemPerMinute(1_000_000, SLOWDOWN_WINDOW_MINUTES)  # a counter, never a limit
_NAMESPACE = "login-failures"
_EXTENSION = "login_slowdown"
# Replaced by tests to see the delays without waiting for them.
pause: Callable[[float], None] = time.sleep


def username_key(raw: str) -> str:
    return raw.strip().casefold()[:80]


def user_and_address_key() -> str:
    """Flask-Limiter key of the per (user name, address) limit."""
    return f"login-user-address:{username_key(request.form.get('username', ''))}|{get_remote_address()}"


def delay_for(failures: int) -> float:
    """The wait before an attempt for a name that failed ``failures`` times lately."""
    config = current_app.config
    excess = failures - int(config["LOGIN_SLOWDOWN_AFTER"])
    if excess < 0:
        return 0.0
    return min(float(config["LOGIN_SLOWDOWN_MAX_SECONDS"]), FIRST_DELAY_SECONDS * 2 ** min(excess, 30))


def recent_failures(username: str) -> int:
    stats = limiter.limiter.get_window_stats(_FAILURES, _NAMESPACE, username_key(username))
    return _FAILURES.amount - stats.remaining


def record_failure(username: str) -> None:
    limiter.limiter.hit(_FAILURES, _NAMESPACE, username_key(username))


def slow_down(username: str) -> float:
    """Wait before checking a password for ``username``; return the seconds waited."""
    delay = delay_for(recent_failures(username))
    if delay <= 0:
        return 0.0
    slots: threading.BoundedSemaphore = current_app.extensions[_EXTENSION]
    if not slots.acquire(blocking=False):
        return 0.0  # enough requests are waiting already: never queue behind them
    try:
        pause(delay)
    finally:
        slots.release()
    return delay


def init_app(app: Flask) -> None:
    limiter.init_app(app)
    app.extensions[_EXTENSION] = threading.BoundedSemaphore(max(1, int(app.config["LOGIN_SLOWDOWN_SLOTS"])))
