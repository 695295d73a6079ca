"""Every statement on the webhook tables that delivery needs, on the app's engine, from any thread.

The delivery threads (and the outbox consumer they run) work outside requests,
without an app context or ORM session: they use SQLAlchemy Core on the
engine of ``models.db``, each unit of work in its own short transaction.
A claim is one statement (``UPDATE ... WHERE id = (SELECT ... FOR UPDATE
SKIP LOCKED LIMIT 1) RETURNING``; on SQLite the same under ``BEGIN
IMMEDIATE``), so of several processes exactly one gets each due delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from contextlib import contextmanager
from typing import Collection, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from database import utcnow
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

_endpoints = WebhookEndpoint.__table__
_deliveries = WebhookDelivery.__table__
_attempts = WebhookAttempt.__table__

PENDING, SENDING = DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value
ERROR_LENGTH = _attempts.c.error.type.length


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this process holds the lease of, with what an attempt needs."""

    id: int
    endpoint_id: int
    message_id: str
    event: str
    body: str
    attempt: int  # the number of the attempt about to be made
    created_at: datetime


@dataclass(frozen=True)
class EndpointTarget:
    """Where and how to send: the endpoint's URL, sealed secret and switch."""

    url: str
    secret_encrypted: str
    enabled: bool


@dataclass(frozen=True)
class AttemptOutcome:
    """What to write after an attempt: the attempt row's fields and the delivery's new state."""

    attempted_at: datetime
    status_code: Optional[int]
    duration_ms: int
    error: Optional[str]
    status: DeliveryStatus
    next_attempt_at: Optional[datetime] = None
    delivery_error: Optional[str] = None


def clip(text: Optional[str], length: int = ERROR_LENGTH) -> Optional[str]:
    return text if text is None or len(text) <= length else text[: length - 1] + "…"


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """A connection for one read, ended with a rollback (nothing was written)."""
    with engine.connect() as conn:
        yield conn
        conn.rollback()


def subscriptions(engine: Engine) -> list[tuple[int, str, datetime]]:
    """Every enabled endpoint's id, events (comma-separated) and creation time (naive UTC)."""
    with _reading(engine) as conn:
        rows = conn.execute(sa.select(_endpoints.c.id, _endpoints.c.events, _endpoints.c.created_at)
                            .where(_endpoints.c.enabled))
        return [(endpoint_id, events, created_at) for endpoint_id, events, created_at in rows]


@dataclass(frozen=True)
class OwedEvent:
    """A job event to deliver to some endpoints: one delivery each, keyed on (event, endpoint)."""

    event_id: int
    event: str
    job_id: str
    body: str
    message_id: str
    endpoint_ids: tuple[int, ...]


def _insert_once(engine: Engine) -> sa.Insert:
    """An insert of deliveries that skips an (event, endpoint) pair already owed: an event read twice."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(_deliveries).on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])


def record_job_events(engine: Engine, owed: list[OwedEvent]) -> int:
    """Owe each event to its endpoints, in one transaction; return how many pairs were offered.

    A pair recorded before (the same event consumed again, by this process
    after a failure or by another one at the same time) is skipped by the
    unique index, so each event makes at most one delivery per endpoint.
    """
    now = utcnow()
    rows = [{"endpoint_id": endpoint_id, "event_id": item.event_id, "message_id": item.message_id,
             "event": item.event, "job_id": item.job_id, "body": item.body, "status": PENDING, "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for item in owed for endpoint_id in item.endpoint_ids]
    if rows:
        with engine.begin() as conn:
            conn.execute(_insert_once(engine), rows)
    return len(rows)


def record_delivery(engine: Engine, endpoint_id: int, event: str, body: str, message_id: str) -> None:
    """Owe one event to one endpoint, whatever it subscribed to (the admin's test button)."""
    _insert_deliveries(engine, [endpoint_id], event, None, body, message_id)


def _insert_deliveries(engine: Engine, endpoint_ids: list[int], event: str, job_id: Optional[str],
                       body: str, message_id: str) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.insert(_deliveries), [
            {"endpoint_id": endpoint_id, "message_id": message_id, "event": event, "job_id": job_id,
             "body": body, "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for endpoint_id in endpoint_ids
        ])


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Pending and due, or sending under a lease that ran out (its process died mid-attempt)."""
    return sa.or_(
        sa.and_(_deliveries.c.status == PENDING, _deliveries.c.next_attempt_at <= now),
        sa.and_(_deliveries.c.status == SENDING, _deliveries.c.lease_until < now),
    )


def _not_to(busy_endpoints: Collection[int]) -> sa.ColumnElement[bool]:
    """Leave out endpoints this process already waits on as often as it may (a stalled one holds no more)."""
    if not busy_endpoints:
        return sa.true()
    return _deliveries.c.endpoint_id.not_in(sorted(busy_endpoints))


def claim(engine: Engine, owner: str, lease_seconds: float,
          busy_endpoints: Collection[int] = ()) -> Optional[ClaimedDelivery]:
    """Take the most overdue delivery, to an endpoint not in ``busy_endpoints``, under a lease for ``owner``.

    None when nothing is due (to the other endpoints).
    """
    now = utcnow()
    oldest_due = (
        sa.select(_deliveries.c.id).where(_due(now), _not_to(busy_endpoints))
        .order_by(_deliveries.c.next_attempt_at, _deliveries.c.id)
        .limit(1).with_for_update(skip_locked=True).scalar_subquery()
    )
    statement = (
        sa.update(_deliveries).where(_deliveries.c.id == oldest_due)
        .values(status=SENDING, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                attempts=_deliveries.c.attempts + 1)
        .returning(_deliveries.c.id, _deliveries.c.endpoint_id, _deliveries.c.message_id, _deliveries.c.event,
                   _deliveries.c.body, _deliveries.c.attempts, _deliveries.c.created_at)
    )
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        row = conn.execute(statement).first()
    return ClaimedDelivery(*row) if row is not None else None


def endpoint_target(engine: Engine, endpoint_id: int) -> Optional[EndpointTarget]:
    """The endpoint's URL, sealed secret and switch; None when it was deleted."""
    columns = (_endpoints.c.url, _endpoints.c.secret_encrypted, _endpoints.c.enabled)
    with _reading(engine) as conn:
        row = conn.execute(sa.select(*columns).where(_endpoints.c.id == endpoint_id)).first()
    return EndpointTarget(*row) if row is not None else None


def finish_attempt(engine: Engine, delivery: ClaimedDelivery, owner: str, outcome: AttemptOutcome) -> bool:
    """Record the attempt and the delivery's new state, if ``owner`` still holds its lease."""
    final = outcome.status.is_final
    with engine.begin() as conn:
        updated = conn.execute(
            sa.update(_deliveries)
            .where(_deliveries.c.id == delivery.id, _deliveries.c.lease_owner == owner,
                   _deliveries.c.status == SENDING)
            .values(status=outcome.status.value, lease_owner=None, lease_until=None,
                    next_attempt_at=outcome.next_attempt_at or _deliveries.c.next_attempt_at,
                    last_error=clip(outcome.delivery_error or outcome.error),
                    finished_at=outcome.attempted_at if final else None)
        ).rowcount
        if updated:
            conn.execute(sa.insert(_attempts).values(
                delivery_id=delivery.id, endpoint_id=delivery.endpoint_id, number=delivery.attempt,
                attempted_at=outcome.attempted_at, status_code=outcome.status_code,
                duration_ms=outcome.duration_ms, error=clip(outcome.error)))
    return bool(updated)


def abandon(engine: Engine, delivery: ClaimedDelivery, owner: str, reason: str) -> None:
    """Give a delivery up without an attempt (its endpoint was disabled meanwhile)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(_deliveries)
            .where(_deliveries.c.id == delivery.id, _deliveries.c.lease_owner == owner)
            .values(status=DeliveryStatus.FAILED.value, lease_owner=None, lease_until=None,
                    attempts=_deliveries.c.attempts - 1, last_error=clip(reason), finished_at=utcnow()))


def disable_endpoint(engine: Engine, endpoint_id: int, reason: str) -> None:
    """Switch an endpoint off because of what it answered (410 Gone), saying why."""
    with engine.begin() as conn:
        conn.execute(sa.update(_endpoints).where(_endpoints.c.id == endpoint_id)
                     .values(enabled=False, disabled_reason=clip(reason, _endpoints.c.disabled_reason.type.length)))


def next_due(engine: Engine, busy_endpoints: Collection[int] = ()) -> Optional[datetime]:
    """When the next delivery to an endpoint not busy here falls due: a retry, or a lease's end."""
    moment = sa.case((_deliveries.c.status == PENDING, _deliveries.c.next_attempt_at),
                     else_=_deliveries.c.lease_until)
    with _reading(engine) as conn:
        value = conn.execute(
            sa.select(sa.func.min(moment))
            .where(_deliveries.c.status.in_((PENDING, SENDING)), _not_to(busy_endpoints))
        ).scalar()
    return value
