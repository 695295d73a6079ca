"""Bearer tokens checked once, then remembered for a few seconds.

Why: a script or the console's fetches may poll ``job_status`` several times a
second with the same token. Checking it each time cost a database round trip
(and a write of ``last_used_at``) per poll. Now a token costs one indexed
lookup per ``TOKEN_CACHE_SECONDS`` per process, and ``last_used_at`` is
written at most once a minute. A revocation ends the token at once in the
process that revoked it (the cache is cleared) and within
``TOKEN_CACHE_SECONDS`` in every other process.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from flask import current_app

DEFAULT_SECONDS = 5.0
EXTENSION_KEY = "api_token_cache"


class TokenCache:
    """Token digest -> client name, each entry valid for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> Optional[str]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            client, expires = entry
            if time.monotonic() >= expires:
                del self._entries[key]
                return None
            return client

    def put(self, key: str, client: str) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            now = time.monotonic()
            if len(self._entries) > 1000:  # many tokens: drop the expired ones first
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            self._entries[key] = (client, now + self.seconds)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def token_cache() -> TokenCache:
    """This app's cache (made on first use, sized by ``TOKEN_CACHE_SECONDS``)."""
    cache = current_app.extensions.get(EXTENSION_KEY)
    if cache is None:
        seconds = float(current_app.config.get("TOKEN_CACHE_SECONDS", DEFAULT_SECONDS))
        cache = current_app.extensions.setdefault(EXTENSION_KEY, TokenCache(seconds))
    return cache
