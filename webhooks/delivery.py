"""This process's delivery threads: consume job events, claim due deliveries, send them, record every attempt.

Delivery never runs in a job's thread: the ``job_finished`` receiver only
wakes these threads (``DeliveryState.wake``), so a slow or hanging endpoint
never delays the next job. A woken thread first turns pending job events
into deliveries (``webhooks/outbox.py``), then sends what is due; each
thread that finds work wakes one more, so a burst spreads over the threads
while a single event costs one or two looks. Otherwise a thread waits on the
state's condition until the next retry falls due, at most
``WEBHOOK_POLL_INTERVAL`` (events and deliveries of a process that died, or
written while this one could not reach the database).

A stalled endpoint holds at most ``WEBHOOK_ENDPOINT_CONCURRENCY`` of this
process's ``WEBHOOK_DELIVERY_THREADS`` (each for at most
``WEBHOOK_TOTAL_TIMEOUT`` per attempt): a claim leaves out endpoints already
waited on that often here, so the other threads keep serving healthy ones.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from sqlalchemy.engine import Engine

from database import OutageLog, is_database_unavailable, utcnow
from jobs.signals import JobEventOutbox
from webhooks import store
from webhooks.models import TEST_EVENT, DeliveryStatus
from webhooks.outbox import consume_events
from webhooks.retry import RetrySchedule
from webhooks.secret_box import SecretBox, SecretUnreadable
from webhooks.sender import AttemptResult, SenderSettings, WebhookSender
from webhooks.signing import signed_headers

log = logging.getLogger(__name__)

# A claim's lease outlasts the attempt's own time limit by this much.
LEASE_MARGIN_SECONDS = 30.0
# Never wait less than this between two looks at a delivery that is due but could not be claimed.
MIN_WAIT_SECONDS = 0.05
# After a database error: look again at once this many times (a pooled connection the database
# dropped, e.g. in a restart, fails once and is replaced), then wait, doubling up to the most.
RETRIES_AT_ONCE, FIRST_ERROR_WAIT, MOST_ERROR_WAIT = 3, 0.25, 5.0


@dataclass
class DeliveryState:
    """One app's webhook delivery in this process; the fields under "shared" are guarded by ``condition``."""

    engine: Engine
    box: SecretBox
    sender_settings: SenderSettings
    schedule: RetrySchedule
    thread_count: int
    poll_interval: float
    autostart: bool
    endpoint_concurrency: int = 1  # attempts this process makes to one endpoint at a time
    outbox: Optional[JobEventOutbox] = None  # the job events to turn into deliveries (None: no job queue)
    outage: Optional[OutageLog] = None  # the app's outage log: one line when the database goes, one when back
    token: str = field(default_factory=lambda: f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    condition: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    consuming: threading.Lock = field(default_factory=threading.Lock)  # one consumer of the outbox at a time
    claiming: threading.Lock = field(default_factory=threading.Lock)  # a claim and its count in in_flight, together
    # shared:
    threads: list[threading.Thread] = field(default_factory=list)
    stopping: bool = False
    wakeups: int = 0
    in_flight: Counter = field(default_factory=Counter)  # endpoint id -> attempts this process makes now

    @property
    def lease_seconds(self) -> float:
        return self.sender_settings.total_timeout + LEASE_MARGIN_SECONDS

    def wake(self) -> None:
        """Tell this process's delivery threads there is something to send (starting them if allowed)."""
        if self.autostart:
            self.start()
        self.pass_on()

    def pass_on(self) -> None:
        """Wake one waiting thread; one that finds work passes it on again."""
        with self.condition:
            self.wakeups += 1
            self.condition.notify()

    def busy_endpoints(self) -> set[int]:
        """Endpoints this process already makes as many attempts to as it may."""
        with self.condition:
            return {endpoint for endpoint, count in self.in_flight.items() if count >= self.endpoint_concurrency}

    def claim(self, owner: str) -> Optional[store.ClaimedDelivery]:
        """Claim the most overdue delivery to an endpoint that is not busy here, and count it as in flight."""
        with self.claiming:
            claimed = store.claim(self.engine, owner, self.lease_seconds, self.busy_endpoints())
            if claimed is not None:
                with self.condition:
                    self.in_flight[claimed.endpoint_id] += 1
        return claimed

    def attempt_ended(self, endpoint_id: int) -> None:
        """Free the endpoint's place: the attempt is recorded (or failed), so it may be claimed for again."""
        with self.condition:
            self.in_flight[endpoint_id] -= 1
            if self.in_flight[endpoint_id] <= 0:
                del self.in_flight[endpoint_id]

    def start(self) -> None:
        """Start delivery threads up to ``thread_count`` if they are not running."""
        with self.condition:
            self.stopping = False
            self.threads = [thread for thread in self.threads if thread.is_alive()]
            for index in range(len(self.threads), self.thread_count):
                owner = f"{self.token}-d{index}"
                thread = threading.Thread(target=run_deliveries, args=(self, owner),
                                          name=f"webhook-delivery-{index}", daemon=True)
                thread.start()
                self.threads.append(thread)

    def stop(self, timeout: Optional[float] = 10.0) -> bool:
        """Ask the threads to stop after their current attempt; return whether all have exited."""
        with self.condition:
            threads, self.stopping = list(self.threads), True
            self.condition.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)


def run_deliveries(state: DeliveryState, owner: str) -> None:
    """One delivery thread: consume events, send what is due, then wait for news or the next due time."""
    with WebhookSender(state.sender_settings) as sender:
        failures = 0
        while True:
            with state.condition:
                if state.stopping:
                    return
                seen = state.wakeups
            try:
                deliver_due(state, sender, owner)
                wait = _seconds_until_next_due(state)
                if failures > RETRIES_AT_ONCE and state.outage is not None:
                    state.outage.recovered()
                failures = 0
            except Exception as error:  # the database may be away for a moment; keep the thread
                failures += 1
                wait = _wait_after(state, error, owner, failures)
            with state.condition:
                if state.wakeups == seen and not state.stopping and wait > 0:
                    state.condition.wait(wait)


def _wait_after(state: DeliveryState, error: Exception, owner: str, failures: int) -> float:
    """How long to wait after a failed round: nothing at first for a database error, then doubling."""
    if not is_database_unavailable(error):
        log.exception("webhook delivery %s failed; trying again later", owner)
        return min(state.poll_interval, MOST_ERROR_WAIT)
    if failures <= RETRIES_AT_ONCE:
        return 0.0  # a stale pooled connection, most likely: not worth a log line
    if state.outage is not None:
        state.outage.failed(error)  # one log line for the whole outage, shared with workers and requests
    return min(FIRST_ERROR_WAIT * 2 ** (failures - RETRIES_AT_ONCE - 1), MOST_ERROR_WAIT, state.poll_interval)


def _seconds_until_next_due(state: DeliveryState) -> float:
    due = store.next_due(state.engine, state.busy_endpoints())
    if due is None:
        return state.poll_interval
    return min(max((due - utcnow()).total_seconds(), MIN_WAIT_SECONDS), state.poll_interval)


def deliver_due(state: DeliveryState, sender: WebhookSender, owner: str) -> int:
    """Turn pending job events into deliveries, then send every due one; return how many attempts were made."""
    if consume_events(state.outbox, state.engine, state.consuming):
        state.pass_on()  # deliveries were recorded: another thread may help send them
    made = 0
    while True:
        with state.condition:
            if state.stopping:
                return made
        claimed = state.claim(owner)
        if claimed is None:
            return made
        state.pass_on()  # there may be more due: one more thread looks while this one sends
        try:
            deliver(state, sender, claimed, owner)
        finally:
            state.attempt_ended(claimed.endpoint_id)
        made += 1


def deliver(state: DeliveryState, sender: WebhookSender, claimed: store.ClaimedDelivery, owner: str) -> None:
    """Make one attempt at a claimed delivery and record it, with the next retry or the end."""
    target = store.endpoint_target(state.engine, claimed.endpoint_id)
    if target is None:
        return  # the endpoint was deleted meanwhile, and its deliveries with it
    if not target.enabled and claimed.event != TEST_EVENT:
        store.abandon(state.engine, claimed, owner, "Endpunkt deaktiviert: Zustellung eingestellt")
        return
    attempted_at = utcnow()
    try:
        secret = state.box.open(target.secret_encrypted)
    except SecretUnreadable as exc:
        result = AttemptResult(None, 0, str(exc), retry=False)
    else:
        body = claimed.body.encode("utf-8")
        headers = signed_headers(secret, claimed.message_id, int(time.time()), body)
        result = sender.post(target.url, body, headers)
    outcome = _outcome(state.schedule, claimed, attempted_at, result)
    if not store.finish_attempt(state.engine, claimed, owner, outcome):
        log.warning("webhook delivery %s: lease lost before the attempt was recorded", claimed.id)
    if result.gone:
        store.disable_endpoint(state.engine, claimed.endpoint_id, result.error or "HTTP 410 Gone")
    if not result.succeeded:
        log.info("webhook %s attempt %d to endpoint %s failed: %s", claimed.message_id, claimed.attempt,
                 claimed.endpoint_id, result.error)


def _outcome(schedule: RetrySchedule, claimed: store.ClaimedDelivery, attempted_at: datetime,
             result: AttemptResult) -> store.AttemptOutcome:
    """The delivery's next state: delivered, retried at a time the schedule says, or given up."""
    fields = dict(attempted_at=attempted_at, status_code=result.status_code,
                  duration_ms=result.duration_ms, error=result.error)
    if result.succeeded:
        return store.AttemptOutcome(status=DeliveryStatus.DELIVERED, **fields)
    retry_at = None
    if result.retry:
        retry_at = schedule.next_attempt(claimed.created_at, utcnow(), claimed.attempt, result.retry_after)
    if retry_at is None:
        gave_up = f"{result.error} – aufgegeben nach {claimed.attempt} Versuch(en)"
        return store.AttemptOutcome(status=DeliveryStatus.FAILED, delivery_error=gave_up, **fields)
    return store.AttemptOutcome(status=DeliveryStatus.PENDING, next_attempt_at=retry_at, **fields)
