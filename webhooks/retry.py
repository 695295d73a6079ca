"""When to try a failed delivery again: exponential backoff with jitter, for a limited time.

The Standard Webhooks spec recommends retrying on a schedule spanning a day
or more, growing exponentially, with random jitter so that many deliveries
failing together (an endpoint that was down) do not all come back at once.
With the defaults (5 s doubling, at most 6 h apart, for 24 h) an event is
tried about 15 times. Tests shrink every figure through the configuration.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

_random = secrets.SystemRandom()


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts: ``first_delay * 2**(n-1)``, capped, with ± ``jitter`` share."""

    first_delay: float = 5.0
    max_delay: float = 6 * 3600.0
    retry_for: float = 24 * 3600.0  # seconds after the event when we give up
    jitter: float = 0.2

    def delay(self, attempts_made: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after the ``attempts_made``-th failed attempt.

        A ``Retry-After`` the endpoint sent lengthens the wait (never beyond
        ``max_delay``); it never shortens it.
        """
        doublings = min(max(attempts_made - 1, 0), 64)  # beyond that the cap applies anyway
        base = min(self.first_delay * 2.0 ** doublings, self.max_delay)
        spread = _random.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        wait = base * spread
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def next_attempt(self, event_at: datetime, now: datetime, attempts_made: int,
                     retry_after: Optional[float] = None) -> Optional[datetime]:
        """When to try again, or None when that would be later than ``retry_for`` after the event."""
        moment = now + timedelta(seconds=self.delay(attempts_made, retry_after))
        return moment if moment <= event_at + timedelta(seconds=self.retry_for) else None
