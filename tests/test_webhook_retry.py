"""The retry schedule: doubling waits with jitter, a cap, and an end a day after the event."""

from __future__ import annotations

from datetime import datetime, timedelta

from webhooks.retry import RetrySchedule

EVENT = datetime(2026, 12, 1, 12, 0, 0)


def test_waits_double_within_their_jitter_and_stop_at_the_cap() -> None:
    schedule = RetrySchedule(first_delay=5, max_delay=3600, retry_for=86400, jitter=0.2)
    for attempts, base in ((1, 5), (2, 10), (3, 20), (8, 640), (12, 3600), (10_000, 3600)):
        waits = [schedule.delay(attempts) for _ in range(50)]
        assert all(0.8 * base <= wait <= 1.2 * base for wait in waits), (attempts, waits)
    assert len({round(schedule.delay(3), 6) for _ in range(20)}) > 1  # jitter spreads them


def test_retry_after_lengthens_a_wait_but_never_beyond_the_cap() -> None:
    schedule = RetrySchedule(first_delay=5, max_delay=600, jitter=0.0)
    assert schedule.delay(1, retry_after=120) == 120
    assert schedule.delay(1, retry_after=1) == 5
    assert schedule.delay(1, retry_after=10_000) == 600


def test_retrying_ends_a_day_after_the_event() -> None:
    schedule = RetrySchedule(first_delay=5, max_delay=6 * 3600, retry_for=86400, jitter=0.0)
    moment, attempts = EVENT, 1
    while (following := schedule.next_attempt(EVENT, moment, attempts)) is not None:
        moment, attempts = following, attempts + 1
    assert timedelta(hours=12) < moment - EVENT <= timedelta(days=1)
    assert 12 <= attempts <= 20, attempts
