"""This process's delivery threads: claim due deliveries, send them, record every attempt.

Delivery never runs in a job's thread: the ``job_finished`` receiver only
records deliveries and wakes these threads (``DeliveryState.wake``), so a
slow or hanging endpoint never delays the next job. A thread waits on the
state's condition: woken at once by a new delivery in this process, else
until the next retry falls due (a timed wait), at most ``WEBHOOK_POLL_INTERVAL``
(deliveries recorded by a process that died before sending them).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from sqlalchemy.engine import Engine

from database import utcnow
from webhooks import store
from webhooks.models import TEST_EVENT, DeliveryStatus
from webhooks.retry import RetrySchedule
from webhooks.secret_box import SecretBox, SecretUnreadable
from webhooks.sender import AttemptResult, SenderSettings, WebhookSender
from webhooks.signing import signed_headers

log = logging.getLogger(__name__)

# A claim's lease outlasts the attempt's own time limit by this much.
LEASE_MARGIN_SECONDS = 30.0
# Never wait less than this between two looks at a delivery that is due but could not be claimed.
MIN_WAIT_SECONDS = 0.05


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
    token: str = field(default_factory=lambda: f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    condition: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    # shared:
    threads: list[threading.Thread] = field(default_factory=list)
    stopping: bool = False
    wakeups: int = 0

    @property
    def lease_seconds(self) -> float:
        return self.sender_settings.total_timeout + LEASE_MARGIN_SECONDS

    def wake(self) -> None:
        """Tell this process's delivery threads there is something to send (starting them if allowed)."""
        if self.autostart:
            self.start()
        with self.condition:
            self.wakeups += 1
            self.condition.notify_all()

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
    """One delivery thread: send what is due, then wait for news or the next due time."""
    with WebhookSender(state.sender_settings) as sender:
        while True:
            with state.condition:
                if state.stopping:
                    return
                seen = state.wakeups
            try:
                deliver_due(state, sender, owner)
                wait = _seconds_until_next_due(state)
            except Exception:  # the database may be away for a moment; keep the thread
                log.exception("webhook delivery %s failed; trying again later", owner)
                wait = min(state.poll_interval, 5.0)
            with state.condition:
                if state.wakeups == seen and not state.stopping:
                    state.condition.wait(wait)


def _seconds_until_next_due(state: DeliveryState) -> float:
    due = store.next_due(state.engine)
    if due is None:
        return state.poll_interval
    return min(max((due - utcnow()).total_seconds(), MIN_WAIT_SECONDS), state.poll_interval)


def deliver_due(state: DeliveryState, sender: WebhookSender, owner: str) -> int:
    """Send every delivery that is due now, one at a time; return how many attempts were made."""
    made = 0
    while True:
        with state.condition:
            if state.stopping:
                return made
        claimed = store.claim(state.engine, owner, state.lease_seconds)
        if claimed is None:
            return made
        deliver(state, sender, claimed, owner)
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
